"""POST /api/v1/predict and friends: every input kind, every error path, never a 500."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from digitguard.inference.predictor import ABSTENTION_TEXT, NOT_A_DIGIT_CLASS, Abstention
from digitguard.models.artifact import load_verified
from digitguard.web import create_app
from tests.web.test_openapi import assert_matches_schema


def drawing_png(size: int = 280) -> bytes:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).line(
        [(size // 2, size // 6), (size // 2, 5 * size // 6)], fill=(0, 0, 0, 255), width=size // 14
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (280, 280), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def a_digit_as_pixels() -> list[list[float]]:
    pixels = np.zeros((28, 28))
    pixels[4:24, 13:15] = 1.0
    return pixels.tolist()


class TestPredictAcceptsEachInputKind:
    def test_raw_png(self, client: FlaskClient) -> None:
        response = client.post("/api/v1/predict", data=drawing_png(), content_type="image/png")
        assert response.status_code == 200
        assert_matches_schema(response.get_json(), "Prediction")
        assert response.headers["X-Request-ID"] == response.get_json()["request_id"]

    def test_multipart_png(self, client: FlaskClient) -> None:
        data = {"image": (io.BytesIO(drawing_png()), "digit.png", "image/png")}
        response = client.post("/api/v1/predict", data=data, content_type="multipart/form-data")
        assert response.status_code == 200
        assert_matches_schema(response.get_json(), "Prediction")

    def test_json_pixels(self, client: FlaskClient) -> None:
        response = client.post("/api/v1/predict", json={"pixels": a_digit_as_pixels()})
        assert response.status_code == 200
        body = response.get_json()
        assert_matches_schema(body, "Prediction")
        assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
        assert body["confidence"] == pytest.approx(max(body["probabilities"]), abs=1e-6)

    def test_details_return_the_model_input_and_an_explanation(self, client: FlaskClient) -> None:
        body = client.post(
            "/api/v1/predict?details=1", data=drawing_png(), content_type="image/png"
        ).get_json()
        assert_matches_schema(body, "Prediction")
        assert np.array(body["input"]).shape == (28, 28)
        heat = np.array(body["explanation"])
        assert heat.shape == (28, 28) and np.abs(heat).max() == pytest.approx(1.0, abs=1e-3)

    def test_request_ids_are_unique(self, client: FlaskClient) -> None:
        ids = {
            client.post("/api/v1/predict", json={"pixels": a_digit_as_pixels()}).get_json()["request_id"]
            for _ in range(5)
        }
        assert len(ids) == 5

    def test_reports_the_served_model_hash(self, client: FlaskClient, app: Flask) -> None:
        body = client.post("/api/v1/predict", json={"pixels": a_digit_as_pixels()}).get_json()
        assert body["model_sha256"] == app.extensions["digitguard"].verified.weights_sha256


class TestAbstention:
    def _app(self, app_config: dict, threshold: float) -> FlaskClient:
        return create_app({**app_config, "ABSTAIN_BELOW": threshold}).test_client()

    def test_below_the_threshold_the_digit_is_null(self, app_config: dict) -> None:
        body = (
            self._app(app_config, 1.0)
            .post("/api/v1/predict", json={"pixels": a_digit_as_pixels()})
            .get_json()
        )
        assert body["abstained"] is True and body["digit"] is None
        assert len(body["probabilities"]) == 10

    def test_with_threshold_zero_it_always_answers(self, app_config: dict) -> None:
        body = (
            self._app(app_config, 0.0)
            .post("/api/v1/predict", json={"pixels": a_digit_as_pixels()})
            .get_json()
        )
        assert body["abstained"] is False
        assert body["digit"] == int(np.argmax(body["probabilities"]))


def predict_with(config: dict, **overrides: object) -> dict:
    client = create_app({**config, **overrides}).test_client()
    response = client.post("/api/v1/predict", json={"pixels": a_digit_as_pixels()})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert_matches_schema(body, "Prediction")
    return body


class TestReasons:
    """Every answer says why it gave no digit, in one field: ``reason`` (and ``reason_text``)."""

    def test_an_answer_carries_a_null_reason_and_no_gate(self, app_config: dict) -> None:
        body = predict_with(app_config, ABSTAIN_BELOW=0.0)
        assert body["abstained"] is False
        assert (body["reason"], body["reason_text"], body["gate_sha256"]) == (None, None, None)

    def test_a_low_confidence_abstention_says_so(self, app_config: dict) -> None:
        body = predict_with(app_config, ABSTAIN_BELOW=1.0)
        assert body["abstained"] is True and body["reason"] == "low_confidence"
        assert body["reason_text"] == ABSTENTION_TEXT[Abstention.LOW_CONFIDENCE]

    def test_a_gate_that_says_not_a_digit_makes_it_an_abstention_whatever_the_confidence(
        self, app_config: dict, gate_model_dir
    ) -> None:
        gate = gate_model_dir(NOT_A_DIGIT_CLASS)
        body = predict_with(app_config, ABSTAIN_BELOW=0.0, GATE_DIR=str(gate))
        assert body["abstained"] is True and body["digit"] is None
        assert body["reason"] == "not_a_digit" and body["reason_text"] == "this doesn't look like a digit"
        assert (
            body["gate_sha256"]
            == load_verified(gate, [Path(d) for d in app_config["TRUST_DIRS"]]).weights_sha256
        )

    def test_a_gate_reading_another_digit_is_models_disagree(self, app_config: dict, gate_model_dir) -> None:
        top = int(np.argmax(predict_with(app_config, ABSTAIN_BELOW=0.0)["probabilities"]))
        body = predict_with(app_config, ABSTAIN_BELOW=0.0, GATE_DIR=str(gate_model_dir((top + 1) % 10)))
        assert body["reason"] == "models_disagree"
        assert body["reason_text"] == ABSTENTION_TEXT[Abstention.MODELS_DISAGREE]

    def test_a_gate_reading_the_same_digit_lets_the_answer_through(
        self, app_config: dict, gate_model_dir
    ) -> None:
        top = int(np.argmax(predict_with(app_config, ABSTAIN_BELOW=0.0)["probabilities"]))
        body = predict_with(app_config, ABSTAIN_BELOW=0.0, GATE_DIR=str(gate_model_dir(top)))
        assert body["digit"] == top and body["reason"] is None
        assert body["gate_sha256"] is not None

    @pytest.mark.parametrize(
        "kwargs",
        [{"json": {"pixels": [[0.0] * 28] * 28}}, {"data": blank_png(), "content_type": "image/png"}],
    )
    def test_nothing_drawn_carries_the_same_reason_fields(self, client: FlaskClient, kwargs) -> None:
        response = client.post("/api/v1/predict", **kwargs)
        body = response.get_json()
        assert response.status_code == 422 and body["error"] == "nothing_drawn"
        assert (body["reason"], body["reason_text"]) == ("nothing_drawn", "nothing was drawn")
        assert_matches_schema(body, "Error")

    def test_other_refusals_carry_no_reason(self, client: FlaskClient) -> None:
        body = client.post("/api/v1/predict", json={"pixels": [[2.0] * 28] * 28}).get_json()
        assert body["error"] == "invalid_pixels" and "reason" not in body

    def test_the_schema_refuses_an_abstention_without_a_reason(self, app_config: dict) -> None:
        body = predict_with(app_config, ABSTAIN_BELOW=1.0)
        with pytest.raises(jsonschema.ValidationError):
            assert_matches_schema({**body, "reason": None, "reason_text": None}, "Prediction")
        with pytest.raises(jsonschema.ValidationError):
            assert_matches_schema({"error": "nothing_drawn", "message": "m"}, "Error")


class TestErrorPaths:
    @pytest.mark.parametrize(
        ("kwargs", "status", "code"),
        [
            ({"data": b"hello", "content_type": "text/plain"}, 415, "unsupported_media_type"),
            ({"data": b"hello"}, 415, "unsupported_media_type"),
            ({"data": b"\x89PNG\r\n\x1a\nbroken", "content_type": "image/png"}, 400, "invalid_png"),
            ({"data": b"GIF89a....", "content_type": "image/png"}, 400, "invalid_png"),
            ({"data": b"{not json", "content_type": "application/json"}, 400, "invalid_json"),
            ({"json": {"image": []}}, 400, "invalid_json"),
            ({"json": {"pixels": [[0.5] * 28] * 27}}, 422, "invalid_pixels"),
            ({"json": {"pixels": [[0.5] * 28] * 28 + [[0.5] * 28]}}, 422, "invalid_pixels"),
            ({"json": {"pixels": [[2.0] * 28] * 28}}, 422, "invalid_pixels"),
            ({"json": {"pixels": [[-0.1] * 28] * 28}}, 422, "invalid_pixels"),
            ({"json": {"pixels": [["a"] * 28] * 28}}, 422, "invalid_pixels"),
            ({"json": {"pixels": 0.5}}, 422, "invalid_pixels"),
            ({"json": {"pixels": [[0.0] * 28] * 28}}, 422, "nothing_drawn"),
            ({"data": blank_png(), "content_type": "image/png"}, 422, "nothing_drawn"),
        ],
    )
    def test_refusals_have_a_status_and_a_stable_code(
        self, client: FlaskClient, kwargs, status: int, code: str
    ) -> None:
        response = client.post("/api/v1/predict", **kwargs)
        assert response.status_code == status
        body = response.get_json()
        assert body["error"] == code
        assert_matches_schema(body, "Error")

    def test_nan_in_pixels_is_422(self, client: FlaskClient) -> None:
        text = json.dumps({"pixels": [[0.5] * 28] * 28}).replace("0.5", "NaN", 1)
        response = client.post("/api/v1/predict", data=text, content_type="application/json")
        assert response.status_code == 422 and response.get_json()["error"] == "invalid_pixels"

    def test_body_too_large_is_413(self, app_config: dict) -> None:
        app = create_app({**app_config, "MAX_CONTENT_LENGTH": 1000})
        response = app.test_client().post(
            "/api/v1/predict", data=b"\x89PNG" + b"0" * 5000, content_type="image/png"
        )
        assert response.status_code == 413
        assert response.get_json()["error"] == "payload_too_large"

    def test_multipart_without_an_image_part_is_400(self, client: FlaskClient) -> None:
        response = client.post("/api/v1/predict", data={"other": "x"}, content_type="multipart/form-data")
        assert response.status_code == 400 and response.get_json()["error"] == "missing_image"

    def test_unknown_route_and_wrong_method_are_json(self, client: FlaskClient) -> None:
        assert client.get("/nope").get_json()["error"] == "not_found"
        response = client.get("/api/v1/predict")
        assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"

    def test_an_unexpected_failure_is_a_json_500_without_a_trace(self, app: Flask) -> None:
        app.config["PROPAGATE_EXCEPTIONS"] = False
        app.extensions["digitguard"].predict = lambda _x: 1 / 0
        response = app.test_client().post("/api/v1/predict", json={"pixels": a_digit_as_pixels()})
        assert response.status_code == 500
        assert response.get_json()["error"] == "internal_error"
        assert "ZeroDivisionError" not in response.get_data(as_text=True)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        body=st.binary(max_size=2000),
        content_type=st.sampled_from(
            ["image/png", "application/json", "multipart/form-data", "text/plain", "", "image/jpeg"]
        ),
    )
    def test_fuzzed_requests_never_cause_a_500(
        self, client: FlaskClient, body: bytes, content_type: str
    ) -> None:
        response = client.post("/api/v1/predict", data=body, content_type=content_type or None)
        assert response.status_code in (200, 400, 413, 415, 422)
        assert "error" in response.get_json() or response.status_code == 200


class TestHealthAndHeaders:
    def test_healthz(self, client: FlaskClient) -> None:
        assert client.get("/healthz").get_json() == {"status": "alive"}

    def test_readyz_names_the_verified_model(self, client: FlaskClient, app: Flask) -> None:
        body = client.get("/readyz").get_json()
        assert body["status"] == "ready"
        assert body["model_sha256"] == app.extensions["digitguard"].verified.weights_sha256
        assert body["gate_sha256"] is None
        assert_matches_schema(body, "Ready")

    @pytest.mark.parametrize("path", ["/", "/api/v1/openapi.json", "/healthz", "/static/app.js"])
    def test_security_headers_on_every_response(self, client: FlaskClient, path: str) -> None:
        with client.get(path) as response:
            headers = response.headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"

    def test_the_page_has_no_inline_script_or_style(self, client: FlaskClient) -> None:
        html = client.get("/").get_data(as_text=True)
        assert "<script src=" in html and "<script>" not in html
        assert "style=" not in html and "<style" not in html
        assert "http://" not in html and "https://" not in html  # no CDN
