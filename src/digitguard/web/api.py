"""``POST /api/v1/predict``: PNG (raw or multipart) or JSON pixels in, a prediction out."""

from __future__ import annotations

import hashlib

import numpy as np
from flask import Blueprint, current_app, g, jsonify, request

from digitguard.inference.predictor import ABSTENTION_TEXT, Abstention, Prediction, check_pixels
from digitguard.inference.preprocess import decode_png, to_mnist
from digitguard.review.queue import input_bytes
from digitguard.web import admin, extraction, lifecycle, predictor_of, review, trail
from digitguard.web.errors import ApiError
from digitguard.web.limits import Budget, inference_slot
from digitguard.web.openapi import openapi_document

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@blueprint.post("/predict")
def predict():
    budget = Budget(float(current_app.config["INFERENCE_BUDGET_S"]))
    extraction.refuse_if_suspected()
    mode = extraction.response_mode()
    with inference_slot():
        digit28 = _model_input()
        budget.check("decoding and preprocessing")
        predictor = predictor_of(current_app)
        prediction = predictor.predict(digit28)
        budget.check("inference")
        details = _details(predictor, digit28, prediction.top_class) if _wants_details() else {}
        if mode != "full":  # an explanation is a gradient: what an extraction attack wants most
            details = {k: v for k, v in details.items() if k == "input"}
        budget.check("explanation")
    # An abstention enters the review queue in the same transaction as its record (or the request fails).
    queued = review.queue_abstention(digit28, prediction)
    trail.record("prediction", _audit_details(digit28, prediction, budget), also=queued)
    current_app.extensions["digitguard.metrics"].prediction(prediction.abstained)
    extraction.observe(digit28, prediction.top_class)
    body = {
        "digit": prediction.digit,
        "probabilities": [round(p, 6) for p in prediction.probabilities],
        "confidence": round(prediction.confidence, 6),
        "abstained": prediction.abstained,
        "abstain_below": predictor.abstain_below,
        "flagged_adversarial": prediction.flagged_adversarial,
        "detector_score": _rounded(prediction.detector_score),
        "flagged_trigger": prediction.flagged_trigger,
        "trigger_score": _rounded(prediction.trigger_score),
        # The one field a client switches on: why there is no digit (null when answered).
        **_reason_fields(prediction.reason),
        "model_sha256": prediction.model_sha256,
        "gate_sha256": prediction.gate_sha256,
        "request_id": g.request_id,
    }
    response = jsonify({**extraction.shape(body, mode), **details})
    response.headers["X-Request-ID"] = g.request_id
    return response


def _reason_fields(reason: Abstention | None) -> dict[str, str | None]:
    """``reason`` and ``reason_text`` as every answer carries them (both null when it answered)."""
    if reason is None:
        return {"reason": None, "reason_text": None}
    return {"reason": reason.value, "reason_text": ABSTENTION_TEXT[reason]}


def _audit_details(digit28: np.ndarray, prediction: Prediction, budget: Budget) -> dict[str, object]:
    details: dict[str, object] = {
        "input_sha256": hashlib.sha256(np.ascontiguousarray(digit28, dtype=np.float32).tobytes()).hexdigest(),
        # The input as the review queue stores it (784 bytes): what a flag must post back.
        "input_u8_sha256": hashlib.sha256(input_bytes(digit28)).hexdigest(),
        "model_sha256": prediction.model_sha256,
        "digit": prediction.digit,
        "abstained": prediction.abstained,
        "probabilities": [round(p, 6) for p in prediction.probabilities],
        "confidence": round(prediction.confidence, 6),
        "detector_scores": {
            "feature_squeezing": _rounded(prediction.detector_score),
            "trigger": _rounded(prediction.trigger_score),
        },
        "flagged_adversarial": prediction.flagged_adversarial,
        "flagged_trigger": prediction.flagged_trigger,
        "reason": None if prediction.reason is None else prediction.reason.value,
        # The gate model's reading (all null without a gate): its hash, top class (10: not a
        # digit) and probability of "not a digit".
        "gate_sha256": prediction.gate_sha256,
        "gate_digit": prediction.gate_digit,
        "gate_not_digit": _rounded(prediction.gate_not_digit),
        "latency_ms": round(budget.elapsed_s() * 1e3, 3),
    }
    predictor = predictor_of(current_app)
    if predictor.members:
        details["ensemble_sha256s"] = list(predictor.member_sha256s)
    if current_app.config["AUDIT_STORE_INPUTS"]:
        details["input"] = np.round(digit28, 4).tolist()
    return details


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 6)


def _details(predictor, digit28: np.ndarray, top_class: int) -> dict[str, object]:
    return {
        "input": np.round(digit28, 4).tolist(),
        "explanation": np.round(predictor.explain(digit28, top_class), 4).tolist(),
        "explained_class": top_class,
    }


blueprint.add_url_rule("/keys", "keys_list", admin.keys_list, methods=["GET"])
blueprint.add_url_rule("/keys", "keys_create", admin.keys_create, methods=["POST"])
blueprint.add_url_rule("/keys/<key_id>/revoke", "keys_revoke", admin.keys_revoke, methods=["POST"])
blueprint.add_url_rule("/model/reload", "model_reload", lifecycle.reload_model, methods=["POST"])


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


def _wants_details() -> bool:
    return request.args.get("details", "").lower() in ("1", "true", "yes")


def _model_input() -> np.ndarray:
    mimetype = request.mimetype
    if mimetype == "image/png":
        return _from_png(request.get_data(cache=False))
    if mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise ApiError(400, "missing_image", "multipart requests carry the PNG in a part named 'image'")
        return _from_png(upload.read())
    if mimetype == "application/json":
        return _from_json()
    raise ApiError(
        415,
        "unsupported_media_type",
        "send image/png, multipart/form-data (part 'image') or application/json",
    )


def _from_png(data: bytes) -> np.ndarray:
    if not data.startswith(PNG_SIGNATURE):
        raise ApiError(400, "invalid_png", "the body is not a PNG image (PNG signature missing)")
    config = current_app.config
    grey = decode_png(data, max_pixels=config["MAX_IMAGE_PIXELS"], max_side=config["MAX_IMAGE_SIDE"])
    return to_mnist(grey)


def _from_json() -> np.ndarray:
    try:
        payload = request.get_json(silent=True)
    except RecursionError as exc:
        raise ApiError(400, "invalid_json", "JSON nested too deeply") from exc
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise ApiError(400, "invalid_json", 'send a JSON object {"pixels": 28x28 numbers in [0, 1]}')
    return check_pixels(payload["pixels"])
