"""``digitguard strip calibrate`` and ``evaluate``: a signed pool and threshold, measured results."""

from __future__ import annotations

import json
from pathlib import Path

from digitguard.data import mnist
from digitguard.defences.strip import strip_calibration_of
from digitguard.models.artifact import load_verified
from tests.conftest import KeyPair
from tests.test_detector_cli import run


def _calibration(model_dir: Path, trusted_key: KeyPair):
    return strip_calibration_of(load_verified(model_dir, [trusted_key.trust_dir]).manifest.metrics)


def test_calibrate_signs_a_pool_and_threshold_that_evaluate_measures(
    small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, tmp_path: Path, capsys
) -> None:
    common = ["--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    key = ["--key", str(trusted_key.private)]
    assert (
        run("strip", "calibrate", str(small_model_dir), *key, "--frr", "0.05", "--overlays", "4", *common)
        == 0
    )
    calibration = _calibration(small_model_dir, trusted_key)
    assert len(calibration.pool) == 4 and calibration.calibration_images == 196  # 200 held out, 4 in the pool
    assert calibration.false_rejection_rate == 0.05 and "validation split" in calibration.source
    out = tmp_path / "strip"
    assert (
        run(
            "strip", "evaluate", str(small_model_dir), "--samples", "40", "--out", str(out), "--json", *common
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert document["model_sha256"] == load_verified(small_model_dir, [trusted_key.trust_dir]).weights_sha256
    labels = mnist.load(mnist_dir).test.labels[:40]
    assert document["clean_images"] == 40 and document["triggered_images"] == int((labels != 7).sum())
    assert 0 <= document["false_acceptance_rate"] <= 1 and document["target"] == 7
    assert "pool_uint8_base64" not in document["detector"]
    assert json.loads((out / "strip-result.json").read_text()) == document


def test_a_test_tail_calibration_is_never_evaluated_on_its_own_digits(
    small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, capsys
) -> None:
    common = ["--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    key = ["--key", str(trusted_key.private)]
    assert (
        run("strip", "calibrate", str(small_model_dir), *key, "--test-tail", "9970", *common) == 2
    )  # > 9000
    assert (
        run(
            "strip",
            "calibrate",
            str(small_model_dir),
            *key,
            "--test-tail",
            "9000",
            "--overlays",
            "2",
            *common,
        )
        == 0
    )
    assert _calibration(small_model_dir, trusted_key).held_out_test_digits == 9000
    assert run("strip", "evaluate", str(small_model_dir), "--json", *common) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert document["clean_images"] == 1000 and "--samples 1000" in document["command"]


def test_evaluate_refuses_a_model_without_a_calibration(small_model_dir: Path, trusted_key: KeyPair) -> None:
    assert run("strip", "evaluate", str(small_model_dir), "--trust", str(trusted_key.trust_dir)) == 2
