"""`digitguard serve` fails closed at start, and serves a verified model through gunicorn."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from digitguard.errors import SignatureError, UntrustedKeyError
from digitguard.web import create_app
from tests.conftest import KeyPair


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "digitguard", "serve", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tampered_model(tmp_path: Path, test_model_dir: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(test_model_dir, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-3] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    return copy


class TestFailClosedAtStart:
    def test_create_app_refuses_a_tampered_model(self, tampered_model: Path, trusted_key: KeyPair) -> None:
        with pytest.raises(SignatureError):
            create_app(
                {
                    "TESTING": True,
                    "MODEL_DIR": str(tampered_model),
                    "TRUST_DIRS": [str(trusted_key.trust_dir)],
                }
            )

    def test_create_app_refuses_an_untrusted_model(self, test_model_dir: Path) -> None:
        with pytest.raises(UntrustedKeyError):
            create_app({"TESTING": True, "MODEL_DIR": str(test_model_dir)})

    @pytest.mark.parametrize("damage", ["tampered", "unsigned", "untrusted"])
    def test_serve_exits_non_zero_with_a_clear_message_and_never_listens(
        self, damage: str, tampered_model: Path, test_model_dir: Path, trusted_key: KeyPair, tmp_path: Path
    ) -> None:
        model, trust = tampered_model, ["--trust", str(trusted_key.trust_dir)]
        if damage == "unsigned":
            model = tmp_path / "unsigned"
            shutil.copytree(test_model_dir, model)
            (model / "model.sig").unlink()
        elif damage == "untrusted":
            model, trust = test_model_dir, []
        port = free_port()
        result = subprocess.run(
            serve_command("--model", str(model), "--port", str(port), *trust),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 3
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_serve_runs_gunicorn_with_a_verified_model(test_model_dir: Path, trusted_key: KeyPair) -> None:
    port = free_port()
    env = {**os.environ, "DIGITGUARD_TRUST_DIRS": str(trusted_key.trust_dir)}
    process = subprocess.Popen(
        serve_command("--model", str(test_model_dir), "--port", str(port), "--workers", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        ready = _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        assert ready["status"] == "ready"
        pixels = [[0.0] * 28 for _ in range(28)]
        for row in range(4, 24):
            pixels[row][14] = 1.0
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/predict",
            data=json.dumps({"pixels": pixels}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.load(response)["model_sha256"] == ready["model_sha256"]
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "server exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")
