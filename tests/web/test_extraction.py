"""Against model extraction in serving: response modes by role, and the PRADA watch that audits and
pauses a caller whose queries look synthetic."""

from __future__ import annotations

import numpy as np
import pytest

from digitguard.security.keys import Role
from digitguard.web import ConfigError, create_app
from tests.security.test_extraction import synthetic_stream
from tests.web.test_trail import records

DIGIT = [[1.0 if 6 <= row <= 21 and 12 <= col <= 15 else 0.0 for col in range(28)] for row in range(28)]


def _predict(client, pixels, token: str | None = None, details: bool = False):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = "/api/v1/predict" + ("?details=1" if details else "")
    return client.post(url, json={"pixels": pixels}, headers=headers)


class TestResponseModes:
    def test_full_is_the_default(self, client) -> None:
        body = _predict(client, DIGIT).get_json()
        assert len(body["probabilities"]) == 10 and "response_mode" not in body

    def test_top1_reveals_the_digit_and_a_rounded_confidence_only(self, app_config) -> None:
        client = create_app({**app_config, "RESPONSE_MODE": "top1"}).test_client()
        body = _predict(client, DIGIT, details=True).get_json()
        assert body["probabilities"] is None and body["response_mode"] == "top1"
        assert body["confidence"] == round(body["confidence"], 2)
        assert "explanation" not in body and len(body["input"]) == 28  # no gradients leave

    def test_rounded_and_per_role(self, app_config) -> None:
        config = {**app_config, "RESPONSE_MODE_BY_ROLE": {"predict": "rounded", "admin": "full"}}
        app = create_app(config)
        token = app.extensions["digitguard.keys"].create("bot", Role.PREDICT).token
        client = app.test_client()
        rounded = _predict(client, DIGIT, token).get_json()
        assert rounded["response_mode"] == "rounded"
        assert all(p == round(p, 2) for p in rounded["probabilities"])
        assert "response_mode" not in _predict(client, DIGIT).get_json()  # anonymous: RESPONSE_MODE (full)

    @pytest.mark.parametrize(
        "change",
        [
            {"RESPONSE_MODE": "everything"},
            {"RESPONSE_MODE_BY_ROLE": {"robots": "top1"}},
            {"EXTRACTION_DETECTOR": "x"},
        ],
    )
    def test_unknown_settings_stop_the_app(self, app_config, change: dict) -> None:
        with pytest.raises(ConfigError):
            create_app({**app_config, **change})


class TestTheExtractionWatch:
    def test_a_synthetic_stream_is_paused_audited_and_others_keep_being_answered(
        self, app_config, mnist_test_digits
    ) -> None:
        images, _labels = mnist_test_digits
        app = create_app({**app_config, "EXTRACTION_MIN_DISTANCES": 30})
        keys = app.extensions["digitguard.keys"]
        attacker, reader = (
            keys.create("attacker", Role.PREDICT).token,
            keys.create("reader", Role.PREDICT).token,
        )
        client = app.test_client()
        statuses = []
        for x in synthetic_stream(images[:40], rounds=3):
            response = _predict(client, np.round(x, 4).tolist(), attacker)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
        assert statuses[-1] == 429 and len(statuses) < 300
        refused = _predict(client, DIGIT, attacker)
        assert refused.status_code == 429 and refused.get_json()["error"] == "extraction_suspected"
        assert int(refused.headers["Retry-After"]) == 600
        events = [r for r in records(app) if r.kind == "extraction.suspected"]
        assert len(events) == 1 and events[0].details["shapiro_wilk_w"] < 0.9
        for image in images[:60]:  # a natural reader, another key: answered throughout
            assert _predict(client, np.round(image, 4).tolist(), reader).status_code == 200

    def test_switched_off_nothing_is_watched(self, app_config, mnist_test_digits) -> None:
        images, _labels = mnist_test_digits
        app = create_app({**app_config, "EXTRACTION_DETECTOR": "off", "EXTRACTION_MIN_DISTANCES": 30})
        client = app.test_client()
        for x in list(synthetic_stream(images[:40], rounds=2))[:120]:
            assert _predict(client, np.round(x, 4).tolist()).status_code == 200
