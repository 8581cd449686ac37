"""Reviewed samples as a labelled IDX data set, ready for retraining.

The output directory holds ``train-images-idx3-ubyte`` (n×28×28, ink = 255 as in MNIST),
``train-labels-idx1-ubyte`` (n labels 0–9) and ``manifest.json``: the SHA-256 and size of each
file, the count per label, the request id, item id, reason (and, for an abstention, why it
abstained), label source, reviewer and model hash of every sample in file order, and the export
time. Everything is written into a temporary directory next to ``out`` and renamed into place:
there is never a half-written export, and an existing non-empty directory is never touched.

By default only samples a reviewer labelled are exported. ``include_flagged_unreviewed`` adds
flagged samples nobody reviewed yet, labelled with what the flagging user suggested — untrusted
labels (anyone who may predict may flag), so they are marked ``"label_source": "user"``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitguard.data import idx
from digitguard.review.queue import ReviewError, ReviewItem, Status, as_grid, sha256_hex

IMAGES_FILE = "train-images-idx3-ubyte"
LABELS_FILE = "train-labels-idx1-ubyte"
MANIFEST_FILE = "manifest.json"
EXPORT_FORMAT = "digitguard-review-export/1"


class ExportError(ReviewError):
    """The export was refused: nothing to export, or the output directory is not empty."""


@dataclass(frozen=True)
class LabelledSample:
    item: ReviewItem
    label: int
    label_source: str  # "reviewer", or "user" for an unreviewed flag's suggestion


@dataclass(frozen=True)
class ExportResult:
    out: Path
    manifest: dict[str, Any]

    @property
    def count(self) -> int:
        return int(self.manifest["count"])


def select(items: Sequence[ReviewItem], *, include_flagged_unreviewed: bool = False) -> list[LabelledSample]:
    """The samples an export contains, in item order; "not a digit" verdicts never are."""
    chosen = []
    for item in items:
        if item.status == Status.LABELLED and item.decision and item.decision.label is not None:
            chosen.append(LabelledSample(item, item.decision.label, "reviewer"))
        elif (
            include_flagged_unreviewed
            and item.status == Status.PENDING
            and item.sample.suggested_label is not None
        ):
            chosen.append(LabelledSample(item, item.sample.suggested_label, "user"))
    return chosen


def export_dataset(
    items: Sequence[ReviewItem], out: Path, *, exported_at: str, include_flagged_unreviewed: bool = False
) -> ExportResult:
    samples = select(items, include_flagged_unreviewed=include_flagged_unreviewed)
    if not samples:
        raise ExportError(f"{out}: nothing to export: no reviewed sample carries a digit label")
    out = Path(out)
    _check_target(out)
    images = np.stack([as_grid(s.item.sample.input) for s in samples])  # (n, 28, 28) uint8
    labels = np.array([s.label for s in samples], dtype=np.uint8)  # (n,)
    files = {IMAGES_FILE: idx.encode(images), LABELS_FILE: idx.encode(labels)}
    manifest = _manifest(samples, files, exported_at, include_flagged_unreviewed)
    files[MANIFEST_FILE] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    _write_atomically(out, files)
    return ExportResult(out, manifest)


def _manifest(
    samples: Sequence[LabelledSample], files: dict[str, bytes], exported_at: str, include_unreviewed: bool
) -> dict[str, Any]:
    label_counts = Counter(s.label for s in samples)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": exported_at,
        "include_flagged_unreviewed": include_unreviewed,
        "count": len(samples),
        "files": {name: {"sha256": sha256_hex(data), "bytes": len(data)} for name, data in files.items()},
        "label_counts": {str(digit): label_counts.get(digit, 0) for digit in range(10)},
        "label_sources": dict(sorted(Counter(s.label_source for s in samples).items())),
        "model_sha256": dict(sorted(Counter(s.item.sample.model_sha256 for s in samples).items())),
        "request_ids": [s.item.sample.request_id for s in samples],
        "samples": [_sample_entry(index, s) for index, s in enumerate(samples)],
    }


def _sample_entry(index: int, chosen: LabelledSample) -> dict[str, Any]:
    item, decision = chosen.item, chosen.item.decision
    return {
        "index": index,
        "item_id": item.id,
        "request_id": item.sample.request_id,
        "reason": item.sample.reason.value,
        "abstention_reason": item.sample.abstention_code,
        "label": chosen.label,
        "label_source": chosen.label_source,
        "reviewer": decision.reviewer if decision else None,
        "reviewed_at": decision.time if decision else None,
        "model_answer": item.sample.digit,
        "model_sha256": item.sample.model_sha256,
        "input_sha256": item.sample.input_sha256,
    }


def _check_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an empty directory; choose another --out")


def _write_atomically(out: Path, files: dict[str, bytes]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, data in files.items():
            with (staging / name).open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        staging.chmod(0o755)
        try:
            # rename(2) replaces an empty directory and refuses a non-empty one, atomically.
            os.rename(staging, out)
        except OSError as exc:
            raise ExportError(f"{out}: could not be created ({exc.strerror}); choose another --out") from exc
        _fsync_directory(out.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
