"""Every refusal of the one loader, each provoked by the tampering it guards against."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from digitguard.errors import (
    ArtifactLayoutError,
    ManifestError,
    ModelError,
    SignatureError,
    TrainingError,
    UntrustedKeyError,
    WeightsError,
)
from digitguard.models.architectures import build_model, parameter_count
from digitguard.models.artifact import load_verified, weights_sha256_of, write_signed_artifact
from digitguard.models.manifest import ModelManifest
from digitguard.models.signing import sign_directory
from tests.conftest import KeyPair


def manifest_for(model: torch.nn.Module, **changes: object) -> ModelManifest:
    manifest = ModelManifest(
        name="test",
        architecture="seed-cnn",
        parameter_count=parameter_count(model),
        weights_sha256=weights_sha256_of(model),
        data={"files": {}, "verified": True, "allow_unverified": False},
        training={"seed": 0},
        metrics={"test_accuracy": 0.1},
        environment={"torch": torch.__version__},
        git_commit=None,
        created_at="2026-11-23T00:00:00+00:00",
        created_by="tests",
    )
    return dataclasses.replace(manifest, **changes)


@pytest.fixture
def model_dir(tmp_path: Path, seed_cnn: torch.nn.Module, trusted_key: KeyPair) -> Path:
    return write_signed_artifact(tmp_path / "model", seed_cnn, manifest_for(seed_cnn), trusted_key.private)


def load(model_dir: Path, key: KeyPair):
    return load_verified(model_dir, [key.trust_dir])


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def rewrite_weights(model_dir: Path, tensors: dict[str, torch.Tensor], key: KeyPair) -> None:
    """A trusted signer publishes weights that are wrong: the loader must still refuse."""
    save_file(tensors, str(model_dir / "model.safetensors"))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    import hashlib

    manifest["weights_sha256"] = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    (model_dir / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n")
    sign_directory(model_dir, key.private)


class TestAnIntactModel:
    def test_loads_with_its_manifest_and_signer(
        self, model_dir: Path, trusted_key: KeyPair, seed_cnn
    ) -> None:
        verified = load(model_dir, trusted_key)
        assert verified.signer_key_id == trusted_key.key_id
        assert verified.manifest.architecture == "seed-cnn"
        assert not verified.model.training
        for name, tensor in seed_cnn.state_dict().items():
            assert torch.equal(verified.model.state_dict()[name], tensor)

    def test_holds_exactly_weights_manifest_and_signature(self, model_dir: Path) -> None:
        assert sorted(p.name for p in model_dir.iterdir()) == [
            "manifest.json",
            "model.safetensors",
            "model.sig",
        ]

    def test_writing_over_an_existing_directory_is_refused(
        self, model_dir: Path, seed_cnn, trusted_key
    ) -> None:
        with pytest.raises(TrainingError, match="already exists"):
            write_signed_artifact(model_dir, seed_cnn, manifest_for(seed_cnn), trusted_key.private)


class TestTamperingIsRefused:
    def test_one_flipped_byte_in_the_weights(self, model_dir: Path, trusted_key: KeyPair) -> None:
        flip_byte(model_dir / "model.safetensors", 5000)
        with pytest.raises(SignatureError, match=r"Hash mismatch for \['model.safetensors'\]"):
            load(model_dir, trusted_key)

    def test_one_flipped_byte_in_the_manifest(self, model_dir: Path, trusted_key: KeyPair) -> None:
        flip_byte(model_dir / "manifest.json", 20)
        with pytest.raises(SignatureError, match=r"Hash mismatch for \['manifest.json'\]"):
            load(model_dir, trusted_key)

    def test_a_model_signed_by_a_key_outside_the_trust_store(
        self, model_dir: Path, trusted_key: KeyPair, untrusted_key: KeyPair
    ) -> None:
        sign_directory(model_dir, untrusted_key.private)
        with pytest.raises(UntrustedKeyError, match="not in the trust store"):
            load(model_dir, trusted_key)

    def test_a_signature_copied_from_another_model(
        self, tmp_path: Path, model_dir: Path, trusted_key
    ) -> None:
        torch.manual_seed(1)
        other_model = build_model("seed-cnn")
        other = write_signed_artifact(
            tmp_path / "other", other_model, manifest_for(other_model), trusted_key.private
        )
        shutil.copy(other / "model.sig", model_dir / "model.sig")
        with pytest.raises(SignatureError, match="Hash mismatch"):
            load(model_dir, trusted_key)

    def test_a_dropped_signature(self, model_dir: Path, trusted_key: KeyPair) -> None:
        (model_dir / "model.sig").unlink()
        with pytest.raises(SignatureError, match="unsigned model"):
            load(model_dir, trusted_key)

    def test_a_garbled_signature(self, model_dir: Path, trusted_key: KeyPair) -> None:
        (model_dir / "model.sig").write_text("{not json")
        with pytest.raises(SignatureError, match="not a model-signing bundle"):
            load(model_dir, trusted_key)

    def test_a_forged_signature_value(self, model_dir: Path, trusted_key: KeyPair) -> None:
        bundle = json.loads((model_dir / "model.sig").read_text())
        signature = bundle["dsseEnvelope"]["signatures"][0]
        signature["sig"] = (
            signature["sig"][:10] + ("A" if signature["sig"][10] != "A" else "B") + signature["sig"][11:]
        )
        (model_dir / "model.sig").write_text(json.dumps(bundle))
        with pytest.raises(SignatureError, match="signature verification failed"):
            load(model_dir, trusted_key)

    def test_an_extra_file(self, model_dir: Path, trusted_key: KeyPair) -> None:
        (model_dir / "notes.txt").write_text("hello")
        with pytest.raises(ArtifactLayoutError, match=r"extra \['notes.txt'\]"):
            load(model_dir, trusted_key)

    def test_an_extra_file_even_when_signed(self, model_dir: Path, trusted_key: KeyPair) -> None:
        (model_dir / "notes.txt").write_text("hello")
        sign_directory(model_dir, trusted_key.private)
        with pytest.raises(ArtifactLayoutError, match="extra"):
            load(model_dir, trusted_key)

    def test_a_missing_manifest(self, model_dir: Path, trusted_key: KeyPair) -> None:
        (model_dir / "manifest.json").unlink()
        with pytest.raises(ArtifactLayoutError, match=r"missing \['manifest.json'\]"):
            load(model_dir, trusted_key)

    def test_a_pickle_file_in_place_of_the_safetensors_weights(
        self, model_dir: Path, trusted_key, seed_cnn
    ) -> None:
        (model_dir / "model.safetensors").unlink()
        torch.save(seed_cnn.state_dict(), model_dir / "model.pth")
        with pytest.raises(ArtifactLayoutError, match="pickle-format"):
            load(model_dir, trusted_key)

    def test_pickle_bytes_under_the_safetensors_name_even_when_signed(
        self, model_dir: Path, trusted_key: KeyPair, seed_cnn
    ) -> None:
        torch.save(seed_cnn.state_dict(), model_dir / "model.safetensors")
        manifest = json.loads((model_dir / "manifest.json").read_text())
        import hashlib

        manifest["weights_sha256"] = hashlib.sha256(
            (model_dir / "model.safetensors").read_bytes()
        ).hexdigest()
        (model_dir / "manifest.json").write_text(json.dumps(manifest))
        sign_directory(model_dir, trusted_key.private)
        with pytest.raises(WeightsError, match="pickle/zip"):
            load(model_dir, trusted_key)

    def test_a_symlinked_weights_file(self, model_dir: Path, trusted_key: KeyPair, tmp_path: Path) -> None:
        outside = tmp_path / "elsewhere.safetensors"
        shutil.move(model_dir / "model.safetensors", outside)
        (model_dir / "model.safetensors").symlink_to(outside)
        with pytest.raises(ArtifactLayoutError, match="only regular files"):
            load(model_dir, trusted_key)

    def test_not_a_directory(self, tmp_path: Path, trusted_key: KeyPair) -> None:
        with pytest.raises(ArtifactLayoutError):
            load(tmp_path / "nothing-here", trusted_key)


class TestTrustedButWrongContentIsRefused:
    def test_wrong_shapes(self, model_dir: Path, trusted_key: KeyPair, seed_cnn) -> None:
        tensors = dict(seed_cnn.state_dict())
        tensors["fc2.weight"] = torch.zeros(11, 128)
        rewrite_weights(model_dir, tensors, trusted_key)
        with pytest.raises(WeightsError, match=r"'fc2.weight' is \(11, 128\)"):
            load(model_dir, trusted_key)

    def test_missing_tensor(self, model_dir: Path, trusted_key: KeyPair, seed_cnn) -> None:
        tensors = {k: v for k, v in seed_cnn.state_dict().items() if k != "fc1.bias"}
        rewrite_weights(model_dir, tensors, trusted_key)
        with pytest.raises(WeightsError, match=r"missing \['fc1.bias'\]"):
            load(model_dir, trusted_key)

    @pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
    def test_non_finite_weights(
        self, model_dir: Path, trusted_key: KeyPair, seed_cnn, bad_value: float
    ) -> None:
        tensors = {k: v.clone() for k, v in seed_cnn.state_dict().items()}
        tensors["conv1.bias"][3] = bad_value
        rewrite_weights(model_dir, tensors, trusted_key)
        with pytest.raises(WeightsError, match="NaN or Inf"):
            load(model_dir, trusted_key)

    def test_manifest_hash_that_does_not_match_the_weights(
        self, model_dir: Path, trusted_key: KeyPair
    ) -> None:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        manifest["weights_sha256"] = "0" * 64
        (model_dir / "manifest.json").write_text(json.dumps(manifest))
        sign_directory(model_dir, trusted_key.private)
        with pytest.raises(ManifestError, match=r"does not match model\.safetensors"):
            load(model_dir, trusted_key)

    def test_unregistered_architecture(self, model_dir: Path, trusted_key: KeyPair) -> None:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        manifest["architecture"] = "mystery-net"
        (model_dir / "manifest.json").write_text(json.dumps(manifest))
        sign_directory(model_dir, trusted_key.private)
        with pytest.raises(ManifestError, match="'mystery-net' is not registered"):
            load(model_dir, trusted_key)

    def test_manifest_with_unknown_fields(self, model_dir: Path, trusted_key: KeyPair) -> None:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        manifest["exec"] = "rm -rf /"
        (model_dir / "manifest.json").write_text(json.dumps(manifest))
        sign_directory(model_dir, trusted_key.private)
        with pytest.raises(ManifestError, match=r"unknown fields \['exec'\]"):
            load(model_dir, trusted_key)

    def test_every_refusal_is_a_model_error_with_exit_status_3(self, model_dir: Path, trusted_key) -> None:
        (model_dir / "model.sig").unlink()
        with pytest.raises(ModelError) as info:
            load(model_dir, trusted_key)
        assert info.value.exit_code == 3


class TestSignatureFuzzing:
    @settings(max_examples=150, deadline=None)
    @given(garbage=st.binary(max_size=2000))
    def test_any_bytes_as_signature_are_refused_as_a_signature_error(
        self, fuzz_model_dir: Path, trusted_key: KeyPair, garbage: bytes
    ) -> None:
        (fuzz_model_dir / "model.sig").write_bytes(garbage)
        with pytest.raises(SignatureError):
            load(fuzz_model_dir, trusted_key)


@pytest.fixture(scope="module")
def fuzz_model_dir(tmp_path_factory: pytest.TempPathFactory, trusted_key: KeyPair) -> Path:
    torch.manual_seed(0)
    model = build_model("seed-cnn")
    return write_signed_artifact(
        tmp_path_factory.mktemp("fuzz") / "model", model, manifest_for(model), trusted_key.private
    )
