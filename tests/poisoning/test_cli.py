"""The click adapters end to end on a 600-image data set: poison, scan and sanitise, train, measure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digitguard.cli import main
from digitguard.data import idx, mnist
from digitguard.data.derived import DATASET_FILE, write_derived
from tests.conftest import SHARED_MNIST, KeyPair


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 600 MNIST training images as a derived directory (fast to poison and train on)."""
    if not (SHARED_MNIST / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    data = mnist.load(SHARED_MNIST)
    out = tmp_path_factory.mktemp("source") / "small"
    write_derived(
        out,
        SHARED_MNIST,
        data.train.images[:600],
        data.train.labels[:600],
        kind="subset",
        transform={"first": 600},
        parent_files=data.file_sha256,
    )
    return out


@pytest.fixture(scope="module")
def poisoned(small_source: Path) -> Path:
    out = small_source.parent / "poisoned"
    main(
        [
            "poison",
            "--data-dir",
            str(small_source),
            "--allow-unverified",
            "--out",
            str(out),
            "--count",
            "30",
            "--flip-labels",
            "0.02",
            "--seed",
            "4",
        ]
    )
    return out


class TestPoisonCommand:
    def test_writes_the_data_and_beside_it_a_manifest_of_exactly_the_changed_samples(
        self, small_source: Path, poisoned: Path
    ) -> None:
        record = json.loads(poisoned.with_name("poisoned.poison.json").read_text())
        assert not (poisoned / "poisoned.poison.json").exists()
        before = idx.read_pair(small_source / mnist.TRAIN_IMAGES, small_source / mnist.TRAIN_LABELS)
        after = idx.read_pair(poisoned / mnist.TRAIN_IMAGES, poisoned / mnist.TRAIN_LABELS)
        changed = np.flatnonzero((before[0] != after[0]).any((1, 2)) | (before[1] != after[1]))
        assert sorted(c["index"] for c in record["changed"]) == list(changed)
        assert sum(c["kind"] == "backdoor" for c in record["changed"]) == 30
        assert sum(c["kind"] == "label_flip" for c in record["changed"]) == 12
        assert record["dataset_files"] == json.loads((poisoned / DATASET_FILE).read_text())["files"]

    def test_an_existing_manifest_is_not_overwritten(
        self, small_source: Path, poisoned: Path, capsys
    ) -> None:
        with pytest.raises(SystemExit) as info:
            main(
                [
                    "poison",
                    "--data-dir",
                    str(small_source),
                    "--allow-unverified",
                    "--out",
                    str(poisoned.with_name("other")),
                    "--manifest",
                    str(poisoned.with_name("poisoned.poison.json")),
                ]
            )
        assert info.value.code == 2
        assert not poisoned.with_name("other").exists()

    def test_unverified_data_is_refused_without_the_override(
        self, small_source: Path, tmp_path: Path, capsys
    ):
        with pytest.raises(SystemExit) as info:
            main(["poison", "--data-dir", str(small_source), "--out", str(tmp_path / "p")])
        assert info.value.code == 2 and "SHA-256 mismatch" in capsys.readouterr().err


def test_scan_sanitize_then_train_records_the_scan_and_attack_backdoor_reports(
    poisoned: Path, tmp_path: Path, trusted_key: KeyPair, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("DIGITGUARD_INSTANCE_DIR", str(tmp_path / "instance"))
    truth = poisoned.with_name("poisoned.poison.json")
    clean = tmp_path / "clean"
    main(
        [
            "data",
            "scan",
            "--data-dir",
            str(poisoned),
            "--proxy-epochs",
            "1",
            "--truth",
            str(truth),
            "--sanitize",
            "--out",
            str(clean),
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert set(result["score"]) == {"backdoor", "label_flip", "all"}
    assert len(result["per_class"]) == 10 and result["samples"] == 600
    dataset = json.loads((clean / DATASET_FILE).read_text())
    assert dataset["kind"] == "sanitized"
    assert dataset["transform"]["removed_indices"] == result["flagged_indices"]
    assert result["sanitized"]["kept"] == 600 - len(result["flagged_indices"])

    model = tmp_path / "model"
    main(
        [
            "train",
            "--data-dir",
            str(clean),
            "--out",
            str(model),
            "--key",
            str(trusted_key.private),
            "--allow-unverified",
            "--epochs",
            "1",
            "--validation-size",
            "50",
            "--no-augment",
            "--quiet",
        ]
    )
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["data"]["dataset"]["transform"]["scan"]["flagged"] == len(result["flagged_indices"])
    capsys.readouterr()
    main(
        [
            "attack-backdoor",
            str(model),
            "--data-dir",
            str(SHARED_MNIST),
            "--trust",
            str(trusted_key.trust_dir),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert 0 <= report["attack_success_rate"] <= 1 and report["triggered_samples"] == 10_000 - 1028
