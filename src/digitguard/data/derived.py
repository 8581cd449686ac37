"""Derived data directories: a modified MNIST copy that says what it is.

A poisoned or sanitised training set is not official MNIST, and must never pass for it. A
derived directory holds the four IDX files (the test files copied byte for byte from the
parent), a ``SHA256SUMS`` and a ``dataset.json`` — a :class:`DatasetManifest` naming its kind,
its files' hashes, its parent's hashes and the transformation that made it (with its
parameters, or the scan result of a sanitisation). Training still needs
``--allow-unverified`` for it (the pinned hashes do not match), but then checks the files
against ``dataset.json`` — a mismatch is refused — and records the manifest in the model's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitguard.data import idx, mnist
from digitguard.errors import DataError, HashMismatchError

DATASET_FILE = "dataset.json"
SUMS_FILE = "SHA256SUMS"
DATASET_FORMAT = "digitguard-dataset/1"
MAX_DATASET_BYTES = 1 << 20


class DatasetManifestError(DataError):
    """``dataset.json`` is malformed or disagrees with the files beside it."""


@dataclass(frozen=True)
class DatasetManifest:
    kind: str  # "poisoned", "sanitized", ...
    files: dict[str, str]  # name -> SHA-256 of the files in this directory
    parent_files: dict[str, str]  # the same for the directory it was derived from
    transform: dict[str, Any]  # tool and parameters (or scan summary)
    format: str = DATASET_FORMAT

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, indent=2) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str, source: Path) -> DatasetManifest:
        try:
            values = json.loads(text)
            manifest = cls(**values)
        except (ValueError, TypeError) as exc:
            raise DatasetManifestError(source, f"not a {DATASET_FORMAT} manifest: {exc}") from exc
        if manifest.format != DATASET_FORMAT or set(manifest.files) != set(mnist.PINNED_SHA256):
            raise DatasetManifestError(source, f"format must be {DATASET_FORMAT} and list the four files")
        return manifest


def write_derived(
    out: Path,
    parent_dir: Path,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    *,
    kind: str,
    transform: dict[str, Any],
    parent_files: dict[str, str],
) -> DatasetManifest:
    """Write a derived directory atomically (staged, then renamed); refuses an existing ``out``."""
    out = Path(out)
    if out.exists():
        raise DataError(out, "output directory already exists; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        # mtime=0: the same arrays always give the same bytes, so the same hashes.
        (staging / mnist.TRAIN_IMAGES).write_bytes(gzip.compress(idx.encode(train_images), mtime=0))
        (staging / mnist.TRAIN_LABELS).write_bytes(gzip.compress(idx.encode(train_labels), mtime=0))
        for name in (mnist.TEST_IMAGES, mnist.TEST_LABELS):
            shutil.copyfile(Path(parent_dir) / name, staging / name)
        files = {name: mnist.sha256_file(staging / name) for name in mnist.PINNED_SHA256}
        sums = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
        (staging / SUMS_FILE).write_text(sums, encoding="utf-8")
        manifest = DatasetManifest(kind, files, dict(parent_files), transform)
        (staging / DATASET_FILE).write_text(manifest.to_json(), encoding="utf-8")
        for path in staging.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        staging.chmod(0o755)
        os.rename(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def read_derived(data_dir: Path, actual_files: dict[str, str]) -> DatasetManifest | None:
    """The directory's ``dataset.json`` checked against the files' actual hashes; None if absent."""
    path = Path(data_dir) / DATASET_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_DATASET_BYTES:
        raise DatasetManifestError(path, f"larger than {MAX_DATASET_BYTES} bytes")
    manifest = DatasetManifest.from_json(path.read_text(encoding="utf-8"), path)
    for name, digest in manifest.files.items():
        if actual_files.get(name) != digest:
            raise HashMismatchError(
                Path(data_dir) / name,
                f"SHA-256 differs from {DATASET_FILE}: listed {digest}, file has {actual_files.get(name)}",
            )
    return manifest
