"""Verified reloads, refused reloads, workers following the target, and files changing on disk."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import torch
from flask import Flask
from werkzeug.serving import make_server

from digitguard.audit.record import parse_record
from digitguard.cli import main
from digitguard.models.architectures import build_model
from digitguard.models.artifact import write_signed_artifact
from digitguard.security.keys import Role
from digitguard.web import create_app
from tests.models.test_artifact import manifest_for
from tests.web.test_access import bearer


@pytest.fixture
def second_model(tmp_path: Path, trusted_key) -> Path:
    torch.manual_seed(7)
    model = build_model("seed-cnn")
    return write_signed_artifact(
        tmp_path / "second", model, manifest_for(model, name="second"), trusted_key.private
    )


@pytest.fixture
def watched_config(app_config: dict, tmp_path: Path, test_model_dir: Path) -> dict:
    served = tmp_path / "served"
    shutil.copytree(test_model_dir, served)
    return {**app_config, "MODEL_DIR": str(served), "MODEL_CHECK_INTERVAL_S": 0.0}


def kinds(app: Flask) -> list[str]:
    return [parse_record(row.body).kind for row in app.extensions["digitguard.trail"].rows()]


def admin_token(app: Flask) -> str:
    return app.extensions["digitguard.keys"].create("ops", Role.ADMIN).token


def test_a_verified_model_is_swapped_in_and_every_worker_follows(
    watched_config: dict, second_model: Path
) -> None:
    first, other = create_app(watched_config), create_app(watched_config)
    old = first.extensions["digitguard"].model_sha256
    response = first.test_client().post(
        "/api/v1/model/reload", json={"model_dir": str(second_model)}, headers=bearer(admin_token(first))
    )
    assert response.status_code == 200
    new = response.get_json()["model_sha256"]
    assert new != old and first.extensions["digitguard"].model_sha256 == new
    assert other.test_client().get("/readyz").get_json()["model_sha256"] == new  # followed at its next check
    assert "model.reloaded" in kinds(first)


def test_a_tampered_model_is_refused_and_the_old_one_keeps_serving(
    watched_config: dict, second_model: Path
) -> None:
    app = create_app(watched_config)
    old = app.extensions["digitguard"].model_sha256
    (second_model / "manifest.json").write_text((second_model / "manifest.json").read_text() + " ")
    response = app.test_client().post(
        "/api/v1/model/reload", json={"model_dir": str(second_model)}, headers=bearer(admin_token(app))
    )
    assert response.status_code == 422 and response.get_json()["error"] == "model_refused"
    assert app.extensions["digitguard"].model_sha256 == old
    assert app.test_client().get("/readyz").status_code == 200
    assert "model.refused" in kinds(app)


def test_changed_or_vanished_files_turn_readiness_red_and_are_audited(watched_config: dict) -> None:
    app = create_app(watched_config)
    client = app.test_client()
    served = Path(watched_config["MODEL_DIR"])
    weights = (served / "model.safetensors").read_bytes()
    (served / "model.safetensors").rename(served / "renamed.safetensors")
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["error"] == "model_files_changed"
    (served / "renamed.safetensors").rename(served / "model.safetensors")
    assert client.get("/readyz").status_code == 200
    (served / "model.safetensors").write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))
    assert client.get("/readyz").status_code == 503
    assert kinds(app).count("model.files_changed") == 2 and "model.files_restored" in kinds(app)


def test_the_cli_reloads_through_the_api(
    watched_config: dict, second_model: Path, monkeypatch, capsys
) -> None:
    app = create_app(watched_config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("DIGITGUARD_API_KEY", admin_token(app))
        main(["model", "reload", "--url", url, "--model", str(second_model)])
        assert "serving second" in capsys.readouterr().out
        (second_model / "model.sig").unlink()
        with pytest.raises(SystemExit) as refused:
            main(["model", "reload", "--url", url, "--model", str(second_model)])
        assert refused.value.code == 3 and "model_refused" in capsys.readouterr().err
    finally:
        server.shutdown()
        thread.join(timeout=10)
