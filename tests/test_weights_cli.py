"""``digitguard weights new-key`` and ``encrypt``, and an encrypted model served from memory."""

from __future__ import annotations

from pathlib import Path

from digitguard.models.encryption import ENCRYPTED_WEIGHTS_FILE
from digitguard.web import create_app
from tests.conftest import KeyPair
from tests.test_detector_cli import run


def test_encrypt_then_serve_with_the_key_file(
    small_model_dir: Path, trusted_key: KeyPair, tmp_path: Path, monkeypatch, capsys
) -> None:
    key = tmp_path / "data.key"
    assert run("weights", "new-key", str(key)) == 0 and key.stat().st_mode & 0o777 == 0o600
    assert run("weights", "new-key", str(key)) != 0  # never overwritten
    out = tmp_path / "encrypted"
    common = ["--signing-key", str(trusted_key.private), "--trust", str(trusted_key.trust_dir)]
    assert (
        run("weights", "encrypt", str(small_model_dir), "--out", str(out), "--key-file", str(key), *common)
        == 0
    )
    assert "encrypted" in capsys.readouterr().out and (out / ENCRYPTED_WEIGHTS_FILE).is_file()
    config = {
        "TESTING": True,
        "MODEL_DIR": str(out),
        "TRUST_DIRS": [str(trusted_key.trust_dir)],
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit.pem"),
    }
    monkeypatch.setenv("DIGITGUARD_MODEL_KEY_FILE", str(key))
    pixels = [[1.0 if 6 <= r <= 21 and 12 <= c <= 15 else 0.0 for c in range(28)] for r in range(28)]
    response = create_app(config).test_client().post("/api/v1/predict", json={"pixels": pixels})
    assert response.status_code == 200 and len(response.get_json()["probabilities"]) == 10
    monkeypatch.delenv("DIGITGUARD_MODEL_KEY_FILE")
    assert run("verify", str(out), "--trust", str(trusted_key.trust_dir)) == 3  # no key: refused
