"""Reviewed samples as an IDX data set the project's own parser reads back, with a manifest of hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from digitguard.data.idx import read_pair
from digitguard.inference.predictor import Abstention
from digitguard.review import export
from digitguard.review.export import IMAGES_FILE, LABELS_FILE, MANIFEST_FILE, ExportError, export_dataset
from digitguard.review.queue import Decision, Reason, ReviewItem, as_grid
from tests.review.conftest import a_sample

EXPORTED_AT = "2026-11-01T12:00:00.000000+00:00"


def reviewed(
    item_id: int,
    label: int | None,
    *,
    column: int = 14,
    model: str = "ab" * 32,
    why: Abstention | None = Abstention.LOW_CONFIDENCE,
) -> ReviewItem:
    sample = a_sample(column=column, model_sha256=model, abstention_reason=why)
    return ReviewItem(item_id, "t", sample, Decision(label, "key:reviewer", f"t{item_id}"))


def flagged(item_id: int, suggested: int | None) -> ReviewItem:
    return ReviewItem(item_id, "t", a_sample(Reason.FLAGGED, digit=1, suggested_label=suggested))


@pytest.fixture
def items() -> list[ReviewItem]:
    return [
        reviewed(1, 3, column=10),
        reviewed(2, None, column=11),  # "not a digit": never exported
        reviewed(3, 7, column=12, model="cd" * 32, why=Abstention.NOT_A_DIGIT),
        flagged(4, 5),
        reviewed(5, 3, column=16),
    ]


class TestExport:
    def test_the_idx_files_read_back_with_the_reviewers_labels(self, items, tmp_path: Path) -> None:
        out = tmp_path / "reviewed"
        result = export_dataset(items, out, exported_at=EXPORTED_AT)
        images, labels = read_pair(out / IMAGES_FILE, out / LABELS_FILE)
        assert labels.tolist() == [3, 7, 3]
        expected = [as_grid(items[i].sample.input) for i in (0, 2, 4)]
        assert np.array_equal(images, np.stack(expected))
        assert result.count == 3 and sorted(p.name for p in out.iterdir()) == sorted(
            [IMAGES_FILE, LABELS_FILE, MANIFEST_FILE]
        )

    def test_the_manifest_names_hashes_counts_requests_models_and_time(self, items, tmp_path: Path) -> None:
        out = tmp_path / "reviewed"
        export_dataset(items, out, exported_at=EXPORTED_AT)
        manifest = json.loads((out / MANIFEST_FILE).read_text())
        for name in (IMAGES_FILE, LABELS_FILE):
            data = (out / name).read_bytes()
            assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        assert manifest["format"] == "digitguard-review-export/1"
        assert manifest["exported_at"] == EXPORTED_AT
        assert manifest["label_counts"] == {str(d): {3: 2, 7: 1}.get(d, 0) for d in range(10)}
        assert manifest["request_ids"] == [items[i].sample.request_id for i in (0, 2, 4)]
        assert manifest["model_sha256"] == {"ab" * 32: 2, "cd" * 32: 1}
        assert manifest["label_sources"] == {"reviewer": 3}
        first = manifest["samples"][0]
        assert first["reviewer"] == "key:reviewer" and first["item_id"] == 1 and first["label"] == 3
        assert first["input_sha256"] == items[0].sample.input_sha256
        assert [entry["reason"] for entry in manifest["samples"]] == ["abstained"] * 3
        reasons = [entry["abstention_reason"] for entry in manifest["samples"]]
        assert reasons == ["low_confidence", "not_a_digit", "low_confidence"]

    def test_unreviewed_flags_only_on_request_and_marked_as_user_labels(self, items, tmp_path: Path) -> None:
        export_dataset(items, tmp_path / "all", exported_at=EXPORTED_AT, include_flagged_unreviewed=True)
        _, labels = read_pair(tmp_path / "all" / IMAGES_FILE, tmp_path / "all" / LABELS_FILE)
        assert labels.tolist() == [3, 7, 5, 3]
        manifest = json.loads((tmp_path / "all" / MANIFEST_FILE).read_text())
        assert manifest["include_flagged_unreviewed"] is True
        assert manifest["samples"][2]["label_source"] == "user" and manifest["samples"][2]["reviewer"] is None
        assert manifest["samples"][2]["abstention_reason"] is None  # a flag: the model answered
        assert manifest["label_sources"] == {"reviewer": 3, "user": 1}

    def test_a_flag_without_a_suggested_label_is_never_exported(self, tmp_path: Path) -> None:
        with pytest.raises(ExportError, match="nothing to export"):
            export_dataset(
                [flagged(1, None)], tmp_path / "o", exported_at="t", include_flagged_unreviewed=True
            )


class TestRefusals:
    def test_nothing_to_export_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ExportError, match="nothing to export"):
            export_dataset([reviewed(1, None)], tmp_path / "o", exported_at="t")
        assert not (tmp_path / "o").exists()

    def test_an_existing_non_empty_directory_is_never_touched(self, items, tmp_path: Path) -> None:
        out = tmp_path / "taken"
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        with pytest.raises(ExportError, match="exists and is not an empty directory"):
            export_dataset(items, out, exported_at="t")
        assert [p.name for p in out.iterdir()] == ["keep.txt"]

    def test_an_existing_empty_directory_is_filled(self, items, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        export_dataset(items, tmp_path / "empty", exported_at="t")
        assert (tmp_path / "empty" / MANIFEST_FILE).is_file()

    def test_a_failed_write_leaves_no_output_and_no_temporary_directory(
        self, items, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def fail(*_args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(export.os, "fsync", fail)
        with pytest.raises(OSError, match="No space left"):
            export_dataset(items, tmp_path / "o", exported_at="t")
        assert list(tmp_path.iterdir()) == []

    def test_a_directory_filled_during_the_export_is_not_replaced(
        self, items, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        out = tmp_path / "raced"
        real_rename = export.os.rename

        def someone_else_first(source: Path, target: Path) -> None:
            out.mkdir()
            (out / "theirs").write_text("x")
            real_rename(source, target)

        monkeypatch.setattr(export.os, "rename", someone_else_first)
        with pytest.raises(ExportError, match="could not be created"):
            export_dataset(items, out, exported_at="t")
        assert [p.name for p in out.iterdir()] == ["theirs"]
        assert [p.name for p in tmp_path.iterdir()] == ["raced"]
