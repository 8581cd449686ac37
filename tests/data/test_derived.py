from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digitguard.data import idx, mnist
from digitguard.data.derived import DATASET_FILE, SUMS_FILE, DatasetManifestError, read_derived, write_derived
from digitguard.errors import DataError, HashMismatchError


def small_train(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


@pytest.fixture
def derived_dir(tmp_path: Path, mnist_dir: Path) -> Path:
    images, labels = small_train()
    write_derived(
        tmp_path / "d",
        mnist_dir,
        images,
        labels,
        kind="poisoned",
        transform={"tool": "test"},
        parent_files=dict(mnist.PINNED_SHA256),
    )
    return tmp_path / "d"


class TestWriteDerived:
    def test_the_directory_is_valid_idx_that_the_parser_reads_back(self, derived_dir: Path) -> None:
        images, labels = small_train()
        read_images, read_labels = idx.read_pair(
            derived_dir / mnist.TRAIN_IMAGES, derived_dir / mnist.TRAIN_LABELS
        )
        assert np.array_equal(read_images, images) and np.array_equal(read_labels, labels)
        data = mnist.load(derived_dir, allow_unverified=True)
        assert data.verified is False and len(data.test.labels) == 10_000

    def test_test_files_are_the_parents_byte_for_byte(self, derived_dir: Path) -> None:
        data = mnist.load(derived_dir, allow_unverified=True)
        assert data.file_sha256[mnist.TEST_IMAGES] == mnist.PINNED_SHA256[mnist.TEST_IMAGES]

    def test_sha256sums_and_dataset_json_list_the_files_actual_hashes(self, derived_dir: Path) -> None:
        actual = {name: mnist.sha256_file(derived_dir / name) for name in mnist.PINNED_SHA256}
        sums = dict(reversed(line.split()) for line in (derived_dir / SUMS_FILE).read_text().splitlines())
        assert sums == actual
        manifest = json.loads((derived_dir / DATASET_FILE).read_text())
        assert manifest["files"] == actual and manifest["kind"] == "poisoned"
        assert manifest["parent_files"] == mnist.PINNED_SHA256

    def test_the_same_arrays_give_the_same_bytes(self, derived_dir: Path, tmp_path: Path, mnist_dir) -> None:
        images, labels = small_train()
        again = write_derived(
            tmp_path / "e",
            mnist_dir,
            images,
            labels,
            kind="poisoned",
            transform={"tool": "test"},
            parent_files=dict(mnist.PINNED_SHA256),
        )
        assert again.files == json.loads((derived_dir / DATASET_FILE).read_text())["files"]

    def test_an_existing_output_is_never_overwritten(self, derived_dir: Path, mnist_dir: Path) -> None:
        with pytest.raises(DataError, match="already exists"):
            write_derived(derived_dir, mnist_dir, *small_train(), kind="x", transform={}, parent_files={})


class TestReadDerived:
    def test_official_mnist_has_no_dataset_manifest(self, mnist_dir: Path) -> None:
        assert read_derived(mnist_dir, dict(mnist.PINNED_SHA256)) is None

    def test_a_file_changed_after_writing_is_refused(self, derived_dir: Path) -> None:
        data = mnist.load(derived_dir, allow_unverified=True)
        changed = {**data.file_sha256, mnist.TRAIN_LABELS: "0" * 64}
        with pytest.raises(HashMismatchError, match=r"differs from dataset\.json"):
            read_derived(derived_dir, changed)

    def test_a_malformed_manifest_is_refused(self, derived_dir: Path) -> None:
        (derived_dir / DATASET_FILE).write_text('{"kind": 1}')
        with pytest.raises(DatasetManifestError):
            read_derived(derived_dir, {})
