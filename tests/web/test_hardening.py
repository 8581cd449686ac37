"""Hostile input, secrets policy, security headers and metrics."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zlib
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image

from digitguard.security.keys import Role
from digitguard.web import ConfigError, create_app
from tests.web.test_access import PIXELS, bearer
from tests.web.test_api import drawing_png


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid grey PNG whose pixels are all zero: tiny on the wire, huge when decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    raw = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b"")
    )


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class TestHostileInput:
    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (bomb_png(20_000, 20_000), "invalid_png"),  # 400 M pixels in ~400 kB
            (png(Image.new("L", (100_000, 1), 255)), "invalid_png"),  # 100k×1
            (png(Image.new("L", (1, 100_000), 255)), "invalid_png"),
            (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "invalid_png"),
            (drawing_png()[:300], "invalid_png"),  # truncated
        ],
        ids=["decompression-bomb", "100k-by-1", "1-by-100k", "garbage-after-signature", "truncated"],
    )
    def test_hostile_pngs_are_refused_before_decoding(
        self, client: FlaskClient, body: bytes, code: str
    ) -> None:
        assert len(body) < 2 * 1024 * 1024
        response = client.post("/api/v1/predict", data=body, content_type="image/png")
        assert response.status_code == 400 and response.get_json()["error"] == code
        assert client.post("/api/v1/predict", data=drawing_png(), content_type="image/png").status_code == 200

    @pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "TIFF", "WEBP"])
    def test_other_image_formats_sent_as_png_are_refused(self, client: FlaskClient, fmt: str) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), "white").save(buffer, format=fmt)
        response = client.post("/api/v1/predict", data=buffer.getvalue(), content_type="image/png")
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_png"

    @pytest.mark.parametrize(
        "text",
        [
            '{"pixels": [[1e400]]}',
            json.dumps({"pixels": [[0.5] * 28] * 28}).replace("0.5", "1e308", 1),
            json.dumps({"pixels": [[0.5] * 28] * 28}).replace("0.5", "Infinity", 1),
            json.dumps({"pixels": [[[0.5]] * 28] * 28}),
            json.dumps({"pixels": [[0.5] * 10_000] * 28}),
            json.dumps({"pixels": "x" * 1000}),
            json.dumps({"pixels": [[True] * 28] * 28}),
        ],
        ids=["1e400", "huge", "infinity", "3d", "wide", "string", "booleans"],
    )
    def test_hostile_json_is_422(self, client: FlaskClient, text: str) -> None:
        response = client.post("/api/v1/predict", data=text, content_type="application/json")
        assert response.status_code == 422
        assert response.get_json()["error"] == "invalid_pixels"

    def test_deeply_nested_json_is_refused_cleanly(self, client: FlaskClient) -> None:
        text = '{"pixels": ' + "[" * 100_000 + "]" * 100_000 + "}"
        response = client.post("/api/v1/predict", data=text, content_type="application/json")
        assert response.status_code in (400, 422)
        assert client.post("/api/v1/predict", json=PIXELS).status_code == 200

    def test_an_oversized_body_is_413_before_it_is_read(self, client: FlaskClient) -> None:
        body = b"\x89PNG\r\n\x1a\n" + os.urandom(3 * 1024 * 1024)
        response = client.post("/api/v1/predict", data=body, content_type="image/png")
        assert response.status_code == 413 and response.get_json()["error"] == "payload_too_large"


class TestSecretKeyPolicy:
    @pytest.mark.parametrize("secret", ["dev", "changeme", "short-but-not-default"])
    def test_outside_tests_a_default_or_short_secret_stops_the_app(
        self, app_config: dict, secret: str
    ) -> None:
        with pytest.raises(ConfigError, match="SECRET_KEY"):
            create_app({**app_config, "TESTING": False, "SECRET_KEY": secret})

    def test_without_a_secret_one_is_generated_once_with_owner_only_permissions(
        self, app_config: dict, tmp_path: Path
    ) -> None:
        config = {**app_config, "TESTING": False, "SECRET_KEY_FILE": str(tmp_path / "secret_key")}
        first, second = create_app(config), create_app(config)
        assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
        assert len(first.config["SECRET_KEY"]) >= 32
        assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600

    def test_a_long_random_secret_is_accepted(self, app_config: dict) -> None:
        app = create_app({**app_config, "TESTING": False, "SECRET_KEY": "k" * 16 + os.urandom(16).hex()})
        assert app.config["SECRET_KEY"]


class TestHeaders:
    def test_hsts_only_behind_tls(self, app_config: dict) -> None:
        plain = create_app(app_config).test_client().get("/healthz")
        assert "Strict-Transport-Security" not in plain.headers
        tls = create_app({**app_config, "TLS": True}).test_client().get("/healthz")
        assert tls.headers["Strict-Transport-Security"].startswith("max-age=")

    def test_csp_forbids_framing_and_inline_code(self, client: FlaskClient) -> None:
        policy = client.get("/").headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
        assert "default-src 'none'" in policy

    def test_no_server_banner_with_a_version(self, client: FlaskClient) -> None:
        response = client.get("/healthz")
        assert "Server" not in response.headers or "/" not in response.headers["Server"]


class TestMetrics:
    def test_admins_read_prometheus_metrics(self, app, client: FlaskClient) -> None:
        admin = app.extensions["digitguard.keys"].create("ops", Role.ADMIN).token
        client.post("/api/v1/predict", json=PIXELS)
        client.post("/api/v1/predict", data=b"x", content_type="text/plain")
        text = client.get("/metrics", headers=bearer(admin)).get_data(as_text=True)
        assert 'digitguard_requests_total{method="POST",route="/api/v1/predict",status="200"} 1.0' in text
        assert 'digitguard_requests_total{method="POST",route="/api/v1/predict",status="415"} 1.0' in text
        assert "digitguard_request_seconds_bucket" in text
        assert "digitguard_predictions_total{outcome=" in text
        sha = app.extensions["digitguard"].model_sha256
        assert f'digitguard_model_info{{model_sha256="{sha}"' in text

    def test_anonymous_callers_cannot_read_metrics(self, client: FlaskClient) -> None:
        assert client.get("/metrics").status_code == 401


class TestStructuredLogs:
    def test_refusals_are_logged_as_json_with_the_request_id(self, client: FlaskClient, caplog) -> None:
        from digitguard.web.logs import JsonFormatter

        with caplog.at_level("INFO", logger="digitguard.requests"):
            response = client.post("/api/v1/predict", data=b"x", content_type="text/plain")
        record = next(r for r in caplog.records if r.name == "digitguard.requests")
        with client.application.test_request_context():
            from flask import g

            g.request_id = response.get_json()["request_id"]
            entry = json.loads(JsonFormatter().format(record))
        assert entry["status"] == 415 and entry["path"] == "/api/v1/predict"
        assert entry["request_id"] == response.get_json()["request_id"]
        assert entry["level"] == "warning"

    def test_successes_are_logged_only_when_asked(self, app_config: dict, caplog) -> None:
        quiet = create_app(app_config).test_client()
        loud = create_app({**app_config, "LOG_REQUESTS": True}).test_client()
        with caplog.at_level("INFO", logger="digitguard.requests"):
            quiet.get("/healthz")
            assert not [r for r in caplog.records if r.name == "digitguard.requests"]
            loud.get("/healthz")
            assert [r.status for r in caplog.records if r.name == "digitguard.requests"] == [200]
