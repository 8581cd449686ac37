"""Weights encrypted at rest: AES-256-GCM under a provided key, the signature over the ciphertext,
decryption in memory only, and every failure a clear refusal."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import torch

from digitguard.errors import ArtifactLayoutError, SignatureError
from digitguard.models.artifact import load_verified, write_encrypted_artifact, write_signed_artifact
from digitguard.models.encryption import (
    ENCRYPTED_WEIGHTS_FILE,
    EnvKeyProvider,
    FileKeyProvider,
    WeightsEncryptionError,
    decrypt,
    encrypt,
    key_id_of,
    new_key_file,
)
from digitguard.models.manifest import MANIFEST_FILE, WEIGHTS_FILE
from digitguard.models.signing import sign_directory
from tests.conftest import KeyPair
from tests.models.test_artifact import manifest_for


@pytest.fixture
def model_dir(tmp_path: Path, seed_cnn: torch.nn.Module, trusted_key: KeyPair) -> Path:
    return write_signed_artifact(tmp_path / "model", seed_cnn, manifest_for(seed_cnn), trusted_key.private)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.key"
    new_key_file(path)
    return path


@pytest.fixture
def encrypted_dir(model_dir: Path, key_file: Path, trusted_key: KeyPair, tmp_path: Path) -> Path:
    return write_encrypted_artifact(
        model_dir, tmp_path / "encrypted" / "model", FileKeyProvider(key_file).read(), trusted_key.private
    )


def _trust(key: KeyPair) -> list[Path]:
    return [key.trust_dir]


def test_the_encrypted_copy_loads_to_the_same_network_with_the_key(
    model_dir: Path, encrypted_dir: Path, key_file: Path, trusted_key: KeyPair, monkeypatch
) -> None:
    assert sorted(p.name for p in encrypted_dir.iterdir()) == sorted(
        [ENCRYPTED_WEIGHTS_FILE, MANIFEST_FILE, "model.sig"]
    )
    plain = load_verified(model_dir, _trust(trusted_key))
    assert (model_dir / WEIGHTS_FILE).read_bytes()[:64] not in (
        encrypted_dir / ENCRYPTED_WEIGHTS_FILE
    ).read_bytes()
    from_file = load_verified(encrypted_dir, _trust(trusted_key), key_provider=FileKeyProvider(key_file))
    monkeypatch.setenv("DIGITGUARD_MODEL_KEY", key_file.read_text().strip())
    from_env = load_verified(encrypted_dir, _trust(trusted_key))  # the default provider reads the environment
    for loaded in (from_file, from_env):
        assert loaded.weights_sha256 == plain.weights_sha256
        for name, tensor in plain.model.state_dict().items():
            assert torch.equal(tensor, loaded.model.state_dict()[name])
    assert sorted(p.name for p in encrypted_dir.iterdir()) == sorted(
        [ENCRYPTED_WEIGHTS_FILE, MANIFEST_FILE, "model.sig"]
    )


def test_without_a_key_or_with_another_one_it_is_refused(
    encrypted_dir: Path, trusted_key: KeyPair, tmp_path: Path
) -> None:
    with pytest.raises(WeightsEncryptionError, match="DIGITGUARD_MODEL_KEY_FILE"):
        load_verified(encrypted_dir, _trust(trusted_key))
    other = tmp_path / "other.key"
    other_id = new_key_file(other)
    with pytest.raises(WeightsEncryptionError, match=f"holds key {other_id}"):
        load_verified(encrypted_dir, _trust(trusted_key), key_provider=FileKeyProvider(other))


def test_a_key_file_others_can_read_is_refused(key_file: Path) -> None:
    key_file.chmod(0o644)
    with pytest.raises(WeightsEncryptionError, match="readable by its owner only"):
        FileKeyProvider(key_file).read()


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_key_is_refused(value: str, monkeypatch) -> None:
    monkeypatch.setenv("DIGITGUARD_MODEL_KEY", value)
    with pytest.raises(WeightsEncryptionError, match=r"base64|32 bytes"):
        EnvKeyProvider().key("0" * 16)


def test_an_altered_ciphertext_fails_the_signature_and_re_signed_fails_decryption(
    encrypted_dir: Path, key_file: Path, trusted_key: KeyPair
) -> None:
    path = encrypted_dir / ENCRYPTED_WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    provider = FileKeyProvider(key_file)
    with pytest.raises(SignatureError):
        load_verified(encrypted_dir, _trust(trusted_key), key_provider=provider)
    sign_directory(encrypted_dir, trusted_key.private)  # an insider with the signing key, not the data key
    with pytest.raises(WeightsEncryptionError, match="authentication failed"):
        load_verified(encrypted_dir, _trust(trusted_key), key_provider=provider)


def test_the_ciphertext_is_bound_to_the_manifests_weights_hash(key_file: Path) -> None:
    key, weights = FileKeyProvider(key_file).read(), b"weights"
    import hashlib

    digest = hashlib.sha256(weights).hexdigest()
    sealed = encrypt(weights, key, digest)
    assert decrypt(sealed, digest, FileKeyProvider(key_file), "t") == weights
    with pytest.raises(WeightsEncryptionError, match="authentication failed"):
        decrypt(sealed, "0" * 64, FileKeyProvider(key_file), "t")
    with pytest.raises(WeightsEncryptionError, match="not the hash"):
        encrypt(weights, key, "0" * 64)
    header_length = int.from_bytes(sealed[7:11], "big")
    header = json.loads(sealed[11 : 11 + header_length])
    assert header["algorithm"] == "AES-256-GCM" and header["key_id"] == key_id_of(key)


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04", b"DGENC1\n\x00\x00\x00\x01{", b"DGENC1\n\x00\x00\x00\x05{}xyz" + b"\x00" * 32],
)
def test_garbage_is_refused_with_a_reason(data: bytes, key_file: Path) -> None:
    with pytest.raises(WeightsEncryptionError, match="encrypted-weights"):
        decrypt(data, "0" * 64, FileKeyProvider(key_file), "t")


def test_plain_and_encrypted_weights_together_are_refused(
    model_dir: Path, encrypted_dir: Path, key_file: Path, trusted_key: KeyPair
) -> None:
    shutil.copy(model_dir / WEIGHTS_FILE, encrypted_dir / WEIGHTS_FILE)
    with pytest.raises(ArtifactLayoutError, match="extra"):
        load_verified(encrypted_dir, _trust(trusted_key), key_provider=FileKeyProvider(key_file))


def test_encrypting_twice_or_over_an_existing_directory_is_refused(
    model_dir: Path, encrypted_dir: Path, key_file: Path, trusted_key: KeyPair
) -> None:
    key = FileKeyProvider(key_file).read()
    with pytest.raises(ArtifactLayoutError, match="already encrypted"):
        write_encrypted_artifact(encrypted_dir, encrypted_dir.parent / "again", key, trusted_key.private)
    with pytest.raises(ArtifactLayoutError, match="already exists"):
        write_encrypted_artifact(model_dir, encrypted_dir, key, trusted_key.private)


def test_a_key_file_is_never_overwritten(key_file: Path) -> None:
    with pytest.raises(FileExistsError):
        new_key_file(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
