"""``digitguard trigger calibrate`` and ``evaluate``: signed calibrations of both kinds, measured results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digitguard.data import mnist
from digitguard.defences.trigger import trigger_calibration_of
from digitguard.models.artifact import load_verified
from tests.conftest import KeyPair
from tests.test_detector_cli import run


def _calibration(model_dir: Path, trusted_key: KeyPair):
    return trigger_calibration_of(load_verified(model_dir, [trusted_key.trust_dir]).manifest.metrics)


@pytest.mark.parametrize("method", ["strip", "occlusion"])
def test_calibrate_signs_a_threshold_that_evaluate_measures(
    method: str, small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, tmp_path: Path, capsys
) -> None:
    common = ["--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    key = ["--key", str(trusted_key.private)]
    assert (
        run(
            "trigger",
            "calibrate",
            str(small_model_dir),
            *key,
            "--method",
            method,
            "--frr",
            "0.05",
            "--overlays",
            "4",
            *common,
        )
        == 0
    )
    calibration = _calibration(small_model_dir, trusted_key)
    assert calibration.kind == {"strip": "strip", "occlusion": "patch-occlusion"}[method]
    # 200 held out; STRIP draws its 4 overlays from them
    assert calibration.calibration_images == (196 if method == "strip" else 200)
    assert calibration.false_rejection_rate == 0.05 and "validation split" in calibration.source
    out = tmp_path / "strip"
    evaluate = ["trigger", "evaluate", str(small_model_dir), "--samples", "40", "--out", str(out), "--json"]
    assert run(*evaluate, *common) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert document["model_sha256"] == load_verified(small_model_dir, [trusted_key.trust_dir]).weights_sha256
    labels = mnist.load(mnist_dir).test.labels[:40]
    assert document["clean_images"] == 40 and document["triggered_images"] == int((labels != 7).sum())
    assert 0 <= document["false_acceptance_rate"] <= 1 and document["target"] == 7
    assert "pool_uint8_base64" not in document["detector"]
    assert json.loads((out / "trigger-result.json").read_text()) == document


def test_a_test_tail_calibration_is_never_evaluated_on_its_own_digits(
    small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, capsys
) -> None:
    common = ["--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    key = ["--key", str(trusted_key.private)]
    assert (
        run("trigger", "calibrate", str(small_model_dir), *key, "--test-tail", "9970", *common) == 2
    )  # > 9000
    assert (
        run(
            "trigger",
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
    assert run("trigger", "evaluate", str(small_model_dir), "--json", *common) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert document["clean_images"] == 1000 and "--samples 1000" in document["command"]


def test_evaluate_refuses_a_model_without_a_calibration(small_model_dir: Path, trusted_key: KeyPair) -> None:
    assert run("trigger", "evaluate", str(small_model_dir), "--trust", str(trusted_key.trust_dir)) == 2
