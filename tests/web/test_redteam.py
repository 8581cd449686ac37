"""The red team's HTTP client against a live test server: the watch pauses the Jacobian attack,
and an ordinary user replaying test digits is answered throughout (issue 8, items 3–4)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from digitguard.security.keys import Role
from digitguard.web import create_app
from tests.conftest import KeyPair
from tests.test_detector_cli import run


@pytest.fixture
def live_service(
    app_config: dict, small_model_dir: Path, trusted_key: KeyPair
) -> Iterator[tuple[str, object]]:
    app = create_app({**app_config, "MODEL_DIR": str(small_model_dir), "KEY_LIMIT": "100000/minute"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(timeout=10)


def _key(app) -> str:
    return app.extensions["digitguard.keys"].create("redteam", Role.PREDICT).token


def test_the_jacobian_attack_through_http_is_paused_by_the_watch(
    live_service, small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, tmp_path: Path
) -> None:
    url, app = live_service
    out = tmp_path / "extraction"
    args = ["--url", url, "--key", _key(app), "--queries", "500", "--seeds", "60", "--epochs", "2"]
    args += ["--reference-model", str(small_model_dir), "--eval-samples", "100", "--out", str(out)]
    args += ["--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    assert run("redteam", "extract", *args) == 0
    result = json.loads((out / "extraction-result.json").read_text())
    assert result["refusal"] == "extraction_suspected" and result["refused_at"] <= 500
    assert result["rounds"] and 0 <= result["rounds"][-1]["agreement"] <= 1


def test_an_ordinary_user_replaying_test_digits_is_never_paused(
    live_service, mnist_dir: Path, tmp_path: Path
) -> None:
    url, app = live_service
    out = tmp_path / "replay"
    args = [
        "--url",
        url,
        "--key",
        _key(app),
        "--count",
        "300",
        "--out",
        str(out),
        "--data-dir",
        str(mnist_dir),
    ]
    assert run("redteam", "replay", *args) == 0
    result = json.loads((out / "replay-result.json").read_text())
    assert result["answered"] == 300 and result["refusal"] is None
    assert result["model_sha256"] == app.extensions["digitguard"].model_sha256


def test_a_reference_model_that_is_not_the_served_one_is_refused(
    live_service, mnist_dir: Path, tmp_path: Path
) -> None:
    url, app = live_service
    basic = Path(__file__).resolve().parents[2] / "models" / "basic"  # not what live_service serves
    args = ["--url", url, "--key", _key(app), "--queries", "20", "--reference-model", str(basic)]
    args += ["--data-dir", str(mnist_dir), "--out", str(tmp_path / "x")]
    assert run("redteam", "extract", *args) == 1
    assert not (tmp_path / "x").exists()
