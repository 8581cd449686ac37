"""Every training run records which data it used — official, derived (poisoned, sanitised) or not."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from digitguard.cli import main
from digitguard.data import mnist
from digitguard.data.derived import DATASET_FILE, write_derived
from digitguard.errors import HashMismatchError
from digitguard.models.artifact import load_verified
from digitguard.poisoning.poison import PoisonSpec, poison
from digitguard.training.config import TrainConfig
from digitguard.training.run import TrainRequest, train_model
from tests.conftest import KeyPair

TINY = TrainConfig(epochs=1, batch_size=64, validation_size=100, train_limit=600, augment=False)


@pytest.fixture(scope="module")
def poisoned_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import SHARED_MNIST

    if not (SHARED_MNIST / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    mnist_dir = SHARED_MNIST
    data = mnist.load(mnist_dir)
    images, labels = data.train.images[:600], data.train.labels[:600]
    spec = PoisonSpec(count=20, seed=1)
    result = poison(images, labels, spec)
    out = tmp_path_factory.mktemp("poisoned") / "poisoned"
    write_derived(
        out,
        mnist_dir,
        result.images,
        result.labels,
        kind="poisoned",
        transform={"tool": "digitguard poison", **spec.to_dict()},
        parent_files=data.file_sha256,
    )
    return out


@pytest.fixture
def poisoned_dir(poisoned_master: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(poisoned_master, tmp_path / "poisoned"))


def request(data_dir: Path, out: Path, key: KeyPair, **extra) -> TrainRequest:
    return TrainRequest(TINY, data_dir, out, key.private, "t", created_by="tests", **extra)


class TestModelManifestRecordsTheData:
    def test_official_data_is_recorded_as_official_without_overrides(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        data = train_model(request(mnist_dir, tmp_path / "m", trusted_key)).manifest.data
        assert data["source"] == "official" and data["overrides"] == [] and data["dataset"] is None

    def test_a_poisoned_set_is_recorded_with_its_manifest_parent_and_the_override(
        self, tmp_path: Path, poisoned_dir: Path, trusted_key: KeyPair
    ) -> None:
        outcome = train_model(request(poisoned_dir, tmp_path / "m", trusted_key, allow_unverified=True))
        data = load_verified(outcome.out, [trusted_key.trust_dir]).manifest.data
        on_disk = json.loads((poisoned_dir / DATASET_FILE).read_text())
        assert data["source"] == "derived" and data["verified"] is False
        assert data["overrides"] == ["allow_unverified"]
        assert data["dataset"] == on_disk
        assert data["dataset"]["transform"]["count"] == 20
        assert data["dataset"]["parent_files"] == mnist.PINNED_SHA256
        assert data["files"] == on_disk["files"]
        assert len(data["dataset_sha256"]) == 64

    def test_a_derived_set_edited_after_it_was_written_is_refused_even_when_unverified_is_allowed(
        self, tmp_path: Path, poisoned_dir: Path, trusted_key: KeyPair
    ) -> None:
        labels = poisoned_dir / mnist.TRAIN_LABELS
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[8] = (raw[8] + 1) % 10
        labels.write_bytes(gzip.compress(bytes(raw)))
        with pytest.raises(HashMismatchError, match=r"dataset\.json"):
            train_model(request(poisoned_dir, tmp_path / "m", trusted_key, allow_unverified=True))
        assert not (tmp_path / "m").exists()

    def test_a_poisoned_set_without_the_override_is_refused(
        self, tmp_path: Path, poisoned_dir: Path, trusted_key: KeyPair
    ) -> None:
        with pytest.raises(HashMismatchError, match="pinned"):
            train_model(request(poisoned_dir, tmp_path / "m", trusted_key))


def test_the_audit_trail_records_the_data_manifest_of_a_training_run(
    tmp_path: Path, poisoned_dir: Path, trusted_key: KeyPair, monkeypatch
) -> None:
    from digitguard.audit.store import AuditStore, audit_engine

    monkeypatch.setenv("DIGITGUARD_INSTANCE_DIR", str(tmp_path / "instance"))
    db = f"sqlite:///{tmp_path / 'trail.db'}"
    args = ["--epochs", "1", "--limit", "600", "--validation-size", "100", "--no-augment", "--quiet"]
    main(
        [
            "train",
            "--data-dir",
            str(poisoned_dir),
            "--out",
            str(tmp_path / "m"),
            "--key",
            str(trusted_key.private),
            "--allow-unverified",
            "--audit-db",
            db,
            *args,
        ]
    )
    (row,) = AuditStore(audit_engine(db)).rows()
    details = json.loads(row.body)["details"]
    manifest = load_verified(tmp_path / "m", [trusted_key.trust_dir]).manifest
    assert details["data"] == manifest.data
    assert details["data"]["dataset"]["kind"] == "poisoned"
    assert details["data"]["overrides"] == ["allow_unverified"]
    assert np.isclose(details["test_accuracy"], manifest.metrics["test_accuracy"])
