"""The human review queue on the web: flags, reviewer pages and the reviewer API.

- ``POST /api/v1/predictions/<request_id>/flag``: whoever received an answer says it is wrong,
  posting back the 28×28 input they were shown (and optionally the right label). The server
  trusts none of it: the request id must be a prediction in the audit trail answered to this
  same caller, and the posted input's SHA-256 must be the one the trail recorded.
- ``GET /review``, ``GET /review/<id>``, ``GET /review/<id>/input.png``, ``POST /review/<id>``:
  the reviewer's pages (session sign-in, CSRF token on the form).
- ``GET /api/v1/review/items``, ``POST /api/v1/review/items/<id>``: the same for API keys.

Abstentions are queued by ``api.predict`` through :func:`queue_abstention`. Every queue write
shares its audit record's transaction, so a queue entry or decision exists exactly when its
record does.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from PIL import Image
from sqlalchemy.engine import Connection

from digitguard.audit.record import AuditFormatError, AuditRecord
from digitguard.inference.predictor import Prediction, check_pixels
from digitguard.review import store as review_store
from digitguard.review.queue import (
    NOT_A_DIGIT,
    AlreadyQueuedError,
    AlreadyReviewedError,
    Decision,
    InvalidLabelError,
    InvalidSampleError,
    Reason,
    ReviewError,
    ReviewItem,
    ReviewStoreError,
    Sample,
    Status,
    UnknownItemError,
    as_grid,
    input_bytes,
    parse_label,
    parse_suggestion,
    sha256_hex,
)
from digitguard.review.store import ReviewStore, now_iso
from digitguard.web import trail
from digitguard.web.errors import ApiError, error_response

blueprint = Blueprint("review", __name__, template_folder="templates")

EXTENSION = "digitguard.review"
PER_PAGE = 25
MAX_PER_PAGE = 100
MAX_ITEM_ID = 2**31 - 1
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
STATUSES = {"pending": Status.PENDING, "labelled": Status.LABELLED, "not_a_digit": Status.NOT_A_DIGIT}
ERRORS: dict[type[ReviewError], tuple[int, str]] = {
    UnknownItemError: (404, "unknown_item"),
    AlreadyQueuedError: (409, "already_queued"),
    AlreadyReviewedError: (409, "already_reviewed"),
    InvalidLabelError: (422, "invalid_label"),
    InvalidSampleError: (422, "invalid_sample"),
    ReviewStoreError: (503, "review_unavailable"),
}


def install(app: Flask, store: ReviewStore) -> None:
    """Give the app its queue, and limit flags like predictions (caller limits, per-address limit)."""
    from digitguard.web.limits import limited

    app.extensions[EXTENSION] = store
    views: dict[str, Any] = app.view_functions
    views["review.flag"] = limited(views["review.flag"])


def queue() -> ReviewStore:
    return current_app.extensions[EXTENSION]


@blueprint.errorhandler(ReviewError)
def review_error(exc: ReviewError):
    status, code = ERRORS.get(type(exc), (422, "review_refused"))
    if status == 503:
        current_app.logger.error("review queue unavailable: %s", exc)
    return error_response(status, code, str(exc), retry_after_s=1 if status == 503 else None)


@blueprint.after_request
def no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")  # inputs people drew, reviewers' work
    return response


# --- entering the queue -------------------------------------------------------------------


def queue_abstention(digit28: Any, prediction: Prediction) -> Callable[[Connection], object] | None:
    """For ``api.predict``: the write that queues an abstained prediction, else ``None``."""
    if not prediction.abstained:
        return None
    sample = Sample(
        request_id=g.request_id,
        reason=Reason.ABSTAINED,
        input=input_bytes(digit28),
        model_sha256=prediction.model_sha256,
        digit=None,
        probabilities=tuple(round(p, 6) for p in prediction.probabilities),
        confidence=round(prediction.confidence, 6),
        abstention_reason=prediction.reason,
    )
    return partial(review_store.insert, sample=sample)


@blueprint.post("/api/v1/predictions/<request_id>/flag")
def flag(request_id: str):
    if not REQUEST_ID.fullmatch(request_id):
        raise ApiError(404, "unknown_prediction", "a request id is 32 lowercase hex digits")
    payload = _json_object('send {"pixels": the 28x28 input you were shown, "label": a digit or null}')
    if "pixels" not in payload:
        raise ApiError(400, "invalid_json", "pixels missing: send back the 28x28 input you were shown")
    data = input_bytes(check_pixels(payload["pixels"]))
    suggested = parse_suggestion(payload.get("label"))
    answered = _prediction_answered_to_caller(request_id)
    if sha256_hex(data) != answered.details.get("input_u8_sha256"):
        raise ApiError(
            422,
            "input_mismatch",
            "the posted input is not the one this prediction answered (SHA-256 differs from the trail's)",
        )
    sample = _flagged_sample(answered, data, suggested)
    trail.record(
        "prediction.flagged",
        {
            "prediction_request_id": request_id,
            "input_u8_sha256": sample.input_sha256,
            "model_sha256": sample.model_sha256,
            "digit": sample.digit,
            "suggested_label": suggested,
        },
        also=partial(review_store.insert, sample=sample),
    )
    body = {"request_id": request_id, "reason": "flagged", "status": "pending", "suggested_label": suggested}
    return jsonify(body), 201


def _flagged_sample(answered: AuditRecord, data: bytes, suggested: int | None) -> Sample:
    details = answered.details
    try:
        return Sample(
            request_id=str(answered.request_id),
            reason=Reason.FLAGGED,
            input=data,
            model_sha256=str(details["model_sha256"]),
            digit=details["digit"],
            probabilities=tuple(float(p) for p in details["probabilities"]),
            confidence=float(details["confidence"]),
            suggested_label=suggested,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSampleError(f"the audit record of {answered.request_id} is incomplete") from exc


def _prediction_answered_to_caller(request_id: str) -> AuditRecord:
    try:
        records = current_app.extensions["digitguard.trail"].find(request_id)
    except (sa.exc.SQLAlchemyError, AuditFormatError) as exc:
        current_app.logger.error("audit trail unreadable: %s", exc)
        raise ApiError(
            503, "audit_unavailable", "the prediction cannot be checked against the trail", retry_after_s=1
        ) from exc
    caller = trail.principal_label()
    for record in records:
        if record.kind == "prediction" and record.principal == caller:
            return record
    raise ApiError(404, "unknown_prediction", f"no prediction {request_id} was answered to you")


# --- reviewing ----------------------------------------------------------------------------


@blueprint.get("/review")
def queue_page():
    page = _positive_int_arg("page", 1)
    total = queue().count(Status.PENDING)
    items = queue().items(Status.PENDING, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    pages = max(1, math.ceil(total / PER_PAGE))
    return render_template(
        "review_queue.html", items=items, total=total, page=page, pages=pages, principal=g.principal
    )


@blueprint.get("/review/<item_id>")
def item_page(item_id: str):
    item = queue().get(_item_id(item_id))
    return render_template(
        "review_item.html", item=item, principal=g.principal, not_a_digit=NOT_A_DIGIT, pending=Status.PENDING
    )


@blueprint.get("/review/<item_id>/input.png")
def input_png(item_id: str):
    item = queue().get(_item_id(item_id))
    buffer = io.BytesIO()
    Image.frombytes("L", (28, 28), item.sample.input).save(buffer, format="PNG")
    return Response(buffer.getvalue(), mimetype="image/png")


@blueprint.post("/review/<item_id>")
def decide_form(item_id: str):
    value = request.form.get("label", "")
    _decide(_item_id(item_id), parse_label(int(value) if re.fullmatch(r"[0-9]", value) else value))
    return redirect(url_for("review.queue_page"))


@blueprint.get("/api/v1/review/items")
def items_list():
    name = request.args.get("status", "pending")
    if name not in STATUSES:
        raise ApiError(400, "invalid_query", f"status is one of {', '.join(STATUSES)}")
    page = _positive_int_arg("page", 1)
    per_page = _positive_int_arg("per_page", PER_PAGE, maximum=MAX_PER_PAGE)
    status = STATUSES[name]
    items = queue().items(status, offset=(page - 1) * per_page, limit=per_page)
    return jsonify(
        items=[item_json(item) for item in items],
        status=name,
        page=page,
        per_page=per_page,
        total=queue().count(status),
    )


@blueprint.post("/api/v1/review/items/<item_id>")
def item_decide(item_id: str):
    number = _item_id(item_id)
    payload = _json_object('send {"label": a digit 0-9 or "not_a_digit"}')
    if "label" not in payload:
        raise ApiError(400, "invalid_json", 'label missing: send {"label": a digit 0-9 or "not_a_digit"}')
    return jsonify(item=item_json(_decide(number, parse_label(payload["label"]))))


def _decide(item_id: int, label: int | None) -> ReviewItem:
    item = queue().get(item_id)
    decision = Decision(label, trail.principal_label(), now_iso())
    trail.record(
        "review.decided",
        {
            "item_id": item.id,
            "prediction_request_id": item.sample.request_id,
            "reason": item.sample.reason.value,
            "abstention_reason": item.sample.abstention_code,
            "label": decision.verdict,
            "model_answer": item.sample.digit,
            "input_sha256": item.sample.input_sha256,
        },
        also=partial(review_store.decide, item_id=item.id, decision=decision),
    )
    return queue().get(item_id)


def item_json(item: ReviewItem) -> dict[str, object]:
    sample, decision = item.sample, item.decision
    return {
        "id": item.id,
        "request_id": sample.request_id,
        "created_at": item.created_at,
        "reason": sample.reason.value,
        "abstention_reason": sample.abstention_code,
        "abstention_text": sample.abstention_text,
        "status": item.status.value,
        "input": as_grid(sample.input).tolist(),
        "input_sha256": sample.input_sha256,
        "model_sha256": sample.model_sha256,
        "digit": sample.digit,
        "probabilities": list(sample.probabilities),
        "confidence": sample.confidence,
        "suggested_label": sample.suggested_label,
        "label": decision.verdict if decision else None,
        "reviewer": decision.reviewer if decision else None,
        "reviewed_at": decision.time if decision else None,
    }


# --- request parsing ----------------------------------------------------------------------


def _item_id(value: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]{0,9}", value) or int(value) > MAX_ITEM_ID:
        raise UnknownItemError(f"no review item {value[:40]!r}")
    return int(value)


def _positive_int_arg(name: str, default: int, maximum: int = 1_000_000) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not re.fullmatch(r"[1-9][0-9]{0,6}", value) or int(value) > maximum:
        raise ApiError(400, "invalid_query", f"{name} is a whole number from 1 to {maximum}")
    return int(value)


def _json_object(usage: str) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", f"send application/json: {usage}")
    try:
        payload = request.get_json(silent=True)
    except RecursionError as exc:
        raise ApiError(400, "invalid_json", "JSON nested too deeply") from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", usage)
    return payload
