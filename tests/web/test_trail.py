"""The app writes every decision and change to the trail — or refuses to answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from digitguard.audit.record import parse_record
from digitguard.audit.store import load_public_keys
from digitguard.cli import main
from digitguard.security.keys import Role
from tests.web.test_access import PIXELS, bearer, sign_in


def records(app: Flask) -> list:
    return [parse_record(row.body) for row in app.extensions["digitguard.trail"].rows()]


def test_model_loading_is_the_first_record(app: Flask) -> None:
    first = records(app)[0]
    assert first.kind == "model.loaded" and first.principal == "system"
    assert first.details["model_sha256"] == app.extensions["digitguard"].model_sha256


def test_every_answered_prediction_has_exactly_one_record(app: Flask, client: FlaskClient) -> None:
    answers = [client.post("/api/v1/predict", json=PIXELS).get_json() for _ in range(5)]
    client.post("/api/v1/predict", data=b"x", content_type="text/plain")  # refused: no decision, no record
    predictions = [r for r in records(app) if r.kind == "prediction"]
    assert [r.request_id for r in predictions] == [a["request_id"] for a in answers]
    details = predictions[0].details
    assert details["model_sha256"] == answers[0]["model_sha256"]
    assert details["probabilities"] == answers[0]["probabilities"]
    assert len(details["input_sha256"]) == 64 and "input" not in details
    assert details["latency_ms"] > 0
    assert details["reason"] == answers[0]["reason"]
    assert "gate" not in records(app)[0].details  # model.loaded names a gate only when one serves


def test_a_prediction_record_says_why_it_abstained_and_what_no_gate_read(app_config: dict) -> None:
    from digitguard.web import create_app

    app = create_app({**app_config, "ABSTAIN_BELOW": 1.0})
    app.test_client().post("/api/v1/predict", json=PIXELS)
    details = next(r for r in records(app) if r.kind == "prediction").details
    assert details["abstained"] is True and details["reason"] == "low_confidence"
    assert [details[k] for k in ("gate_sha256", "gate_digit", "gate_not_digit")] == [None, None, None]


def test_a_prediction_record_carries_the_gates_reading(app_config: dict, gate_model_dir) -> None:
    from digitguard.web import create_app

    app = create_app({**app_config, "ABSTAIN_BELOW": 0.0, "GATE_DIR": str(gate_model_dir(10))})
    answer = app.test_client().post("/api/v1/predict", json=PIXELS).get_json()
    loaded, prediction = records(app)[0], next(r for r in records(app) if r.kind == "prediction")
    assert loaded.details["gate"]["sha256"] == answer["gate_sha256"]
    assert loaded.details["gate"]["path"] == str(gate_model_dir(10))
    details = prediction.details
    assert details["reason"] == "not_a_digit" and details["digit"] is None
    assert details["gate_sha256"] == answer["gate_sha256"] and details["gate_digit"] == 10
    assert details["gate_not_digit"] == pytest.approx(1.0, abs=1e-3)


def test_anonymous_callers_are_recorded_by_a_keyed_hash_not_their_address(app: Flask, client) -> None:
    client.post("/api/v1/predict", json=PIXELS)
    principal = next(r for r in records(app) if r.kind == "prediction").principal
    assert principal.startswith("anonymous:") and "127.0.0.1" not in principal


def test_inputs_are_stored_only_when_asked(app_config: dict) -> None:
    from digitguard.web import create_app

    app = create_app({**app_config, "AUDIT_STORE_INPUTS": True})
    app.test_client().post("/api/v1/predict", json=PIXELS)
    stored = next(r for r in records(app) if r.kind == "prediction").details["input"]
    assert len(stored) == 28 and stored[10][14] == 1.0


def test_a_decision_that_cannot_be_recorded_is_not_returned(app: Flask, client: FlaskClient) -> None:
    with app.extensions["digitguard.trail"].engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE audit_records")
    response = client.post("/api/v1/predict", json=PIXELS)
    assert response.status_code == 503
    assert response.get_json()["error"] == "audit_unavailable"
    assert "digit" not in response.get_json()


def test_key_changes_and_sign_ins_are_recorded(app: Flask, client: FlaskClient) -> None:
    admin = app.extensions["digitguard.keys"].create("root", Role.ADMIN).token
    created = client.post(
        "/api/v1/keys", json={"name": "bot", "role": "predict"}, headers=bearer(admin)
    ).get_json()
    client.post(f"/api/v1/keys/{created['key']['key_id']}/revoke", headers=bearer(admin))
    sign_in(client, admin[:-4] + ("AAAA" if not admin.endswith("AAAA") else "BBBB"))
    sign_in(client, admin)
    kinds = [(r.kind, r.principal) for r in records(app)]
    admin_id = admin.split("_")[1]
    assert ("key.created", f"key:{admin_id}") in kinds
    assert ("key.revoked", f"key:{admin_id}") in kinds
    assert [k for k, _ in kinds if k.startswith("signin")] == ["signin.failed", "signin.succeeded"]


class TestAuditCommands:
    @pytest.fixture
    def filled(self, app: Flask, client: FlaskClient, database_url: str) -> str:
        for _ in range(3):
            client.post("/api/v1/predict", json=PIXELS)
        return database_url

    def test_verify_passes_then_fails_after_an_edit(self, app: Flask, filled: str, capsys) -> None:
        app.extensions["digitguard.trail"].checkpoint()
        pub = self._public_key(app)
        main(["audit", "verify", "--db", filled, "--key", str(pub)])
        assert "chain intact" in capsys.readouterr().out
        with app.extensions["digitguard.trail"].engine.begin() as connection:
            body = connection.execute(sa.text("select body from audit_records where seq = 2")).scalar()
            edited = body.replace('"digit":', '"digit_was":')
            connection.execute(sa.text("update audit_records set body = :b where seq = 2"), {"b": edited})
        with pytest.raises(SystemExit) as broken:
            main(["audit", "verify", "--db", filled, "--key", str(pub)])
        assert broken.value.code == 1
        assert "record 2 was edited" in capsys.readouterr().err

    def test_export_and_show(self, app: Flask, filled: str, capsys, tmp_path: Path) -> None:
        out = tmp_path / "trail.jsonl"
        main(["audit", "export", "--db", filled, "--out", str(out)])
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
        request_id = next(
            line["record"]["request_id"] for line in lines if line["record"]["kind"] == "prediction"
        )
        main(["audit", "show", "--db", filled, "--request-id", request_id])
        shown = json.loads(capsys.readouterr().out)
        assert shown["kind"] == "prediction" and "probabilities" in shown

    @staticmethod
    def _public_key(app: Flask) -> Path:
        path = Path(app.config["AUDIT_SIGNING_KEY_FILE"]).with_suffix(".pub")
        assert load_public_keys([path])
        return path


def test_the_app_passes_its_durability_setting_to_the_trail(app_config: dict) -> None:
    from digitguard.web import create_app

    app = create_app({**app_config, "AUDIT_SQLITE_SYNCHRONOUS": "normal"})
    assert app.extensions["digitguard.trail"].sqlite.synchronous == "NORMAL"
