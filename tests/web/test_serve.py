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

from digitguard.errors import ModelError, SignatureError, UntrustedKeyError
from digitguard.models.architectures import build_model
from digitguard.models.artifact import load_verified, write_signed_artifact
from digitguard.web import create_app
from tests.conftest import KeyPair
from tests.models.test_artifact import manifest_for
from tests.web.test_openapi import assert_matches_schema


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


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 60, context=None) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "server exited"
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


def write_self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key, written for one test (never committed)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / f"{name}.crt", directory / f"{name}.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certfile, keyfile


class TestTLS:
    def test_serves_https_only_with_hsts_and_tls_1_2_or_later(
        self, test_model_dir: Path, trusted_key: KeyPair, tmp_path: Path
    ) -> None:
        import ssl

        certfile, keyfile = write_self_signed(tmp_path)
        port = free_port()
        env = {**os.environ, "DIGITGUARD_TRUST_DIRS": str(trusted_key.trust_dir)}
        args = ["--model", str(test_model_dir), "--port", str(port), "--workers", "1"]
        process = subprocess.Popen(
            serve_command(*args, "--certfile", str(certfile), "--keyfile", str(keyfile)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            context = ssl.create_default_context(cafile=str(certfile))
            ready = _wait_ready(f"https://127.0.0.1:{port}/readyz", process, context=context)
            assert ready["status"] == "ready"
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=10, context=context) as page:
                assert page.headers["Strict-Transport-Security"].startswith("max-age=")
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
            with pytest.raises(OSError):  # plain HTTP on the TLS port gets no answer
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10)
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=30)
        assert b"at https://127.0.0.1" in stderr

    def test_the_server_context_refuses_anything_older_than_tls_1_2(self, tmp_path: Path) -> None:
        import ssl

        from digitguard.web.server import TLSFiles, tls_context

        context = tls_context(TLSFiles(*write_self_signed(tmp_path)))
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2

    def test_a_key_that_is_not_the_certificate_s_is_refused_before_listening(
        self, test_model_dir: Path, trusted_key: KeyPair, tmp_path: Path
    ) -> None:
        certfile, _ = write_self_signed(tmp_path, "one")
        _, other_key = write_self_signed(tmp_path, "two")
        port = free_port()
        result = subprocess.run(
            serve_command(
                "--model", str(test_model_dir), "--trust", str(trusted_key.trust_dir), "--port", str(port),
                "--certfile", str(certfile), "--keyfile", str(other_key),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.startswith("error: cannot use certificate")
        assert "Traceback" not in result.stderr
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0

    def test_a_certificate_without_its_key_is_a_usage_error(self, tmp_path: Path) -> None:
        certfile, _ = write_self_signed(tmp_path)
        result = subprocess.run(
            serve_command("--certfile", str(certfile)), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2
        assert "--certfile and --keyfile go together" in result.stderr


class TestGate:
    """``serve --gate DIR`` / ``GATE_DIR``: a second signed model, verified like the first, 11 outputs."""

    def test_the_gate_is_verified_and_its_hash_is_ready(
        self, app_config: dict, gate_model_dir, trusted_key: KeyPair
    ) -> None:
        gate = gate_model_dir(3)
        app = create_app({**app_config, "GATE_DIR": str(gate)})
        expected = load_verified(gate, [trusted_key.trust_dir]).weights_sha256
        assert app.extensions["digitguard"].gate.weights_sha256 == expected
        ready = app.test_client().get("/readyz").get_json()
        assert ready["status"] == "ready" and ready["gate_sha256"] == expected
        assert_matches_schema(ready, "Ready")
        assert expected[:16] in app.test_client().get("/").get_data(as_text=True)

    def test_a_gate_with_ten_outputs_is_refused_naming_the_rule_and_the_directory(
        self, app_config: dict, test_model_dir: Path
    ) -> None:
        with pytest.raises(ModelError, match=r"needs 11 outputs.*not 10") as refused:
            create_app({**app_config, "GATE_DIR": str(test_model_dir)})
        assert str(refused.value).startswith(f"{test_model_dir}: refused as a gate")

    def test_a_gate_signed_by_an_untrusted_key_is_refused(
        self, app_config: dict, untrusted_key: KeyPair, tmp_path: Path
    ) -> None:
        model = build_model("small-cnn-gate")
        manifest = manifest_for(model, architecture="small-cnn-gate")
        gate = write_signed_artifact(tmp_path / "gate", model, manifest, untrusted_key.private)
        with pytest.raises(UntrustedKeyError):
            create_app({**app_config, "GATE_DIR": str(gate)})

    def test_a_reload_keeps_the_gate(self, app_config: dict, gate_model_dir, test_model_dir: Path) -> None:
        from digitguard.web.lifecycle import swap

        app = create_app({**app_config, "GATE_DIR": str(gate_model_dir(10))})
        gate = app.extensions["digitguard"].gate
        with app.test_request_context():
            assert swap(app, test_model_dir).gate is gate
        assert app.test_client().get("/readyz").get_json()["gate_sha256"] == gate.weights_sha256

    def test_serve_with_a_ten_output_gate_exits_non_zero_with_a_clear_message(
        self, test_model_dir: Path, trusted_key: KeyPair
    ) -> None:
        port = free_port()
        result = subprocess.run(
            serve_command(
                "--model", str(test_model_dir), "--gate", str(test_model_dir),
                "--trust", str(trusted_key.trust_dir), "--port", str(port),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert result.returncode == 3
        assert result.stderr.startswith(f"error: {test_model_dir}: refused as a gate: a gate model needs 11")
        assert "Traceback" not in result.stderr
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0

    def test_serve_with_a_gate_reports_its_hash_and_answers_with_reasons(
        self, test_model_dir: Path, gate_model_dir, trusted_key: KeyPair, tmp_path: Path
    ) -> None:
        gate = gate_model_dir(10)
        port = free_port()
        env = {**os.environ, "DIGITGUARD_INSTANCE_DIR": str(tmp_path / "instance")}
        process = subprocess.Popen(
            serve_command(
                "--model", str(test_model_dir), "--gate", str(gate), "--trust", str(trusted_key.trust_dir),
                "--port", str(port), "--workers", "1",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        try:
            ready = _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
            assert ready["gate_sha256"] == load_verified(gate, [trusted_key.trust_dir]).weights_sha256
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/predict",
                data=json.dumps({"pixels": [[1.0 if 4 <= r < 24 and c == 14 else 0.0 for c in range(28)]
                                            for r in range(28)]}).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.load(response)
            assert body["reason"] == "not_a_digit" and body["gate_sha256"] == ready["gate_sha256"]
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=30)
        assert f"gate {gate} (weights sha256 {ready['gate_sha256']})".encode() in stderr


class TestTheServedDefault:
    def test_the_default_model_comes_with_the_default_gate_and_a_chosen_model_with_none(self) -> None:
        from digitguard.web import default_gate_dir, default_model_dir, gate_dir_of

        assert default_model_dir().name == "robust-drawing" and default_gate_dir().name == "digit-gate"
        assert gate_dir_of({"MODEL_DIR": None, "GATE_DIR": None}) == default_gate_dir()
        assert gate_dir_of({"MODEL_DIR": "models/basic", "GATE_DIR": None}) is None
        assert gate_dir_of({"MODEL_DIR": None, "GATE_DIR": "off"}) is None
        assert gate_dir_of({"MODEL_DIR": "m", "GATE_DIR": "g"}) == Path("g")

    def test_the_shipped_default_pair_verifies_against_the_repository_trust_store(self) -> None:
        from digitguard.inference.predictor import Predictor
        from digitguard.models.artifact import load_verified
        from digitguard.web import default_gate_dir, default_model_dir

        predictor = Predictor(load_verified(default_model_dir()), gate=load_verified(default_gate_dir()))
        assert predictor.gate_model is not None
