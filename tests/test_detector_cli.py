"""``digitguard detector calibrate`` and ``evaluate``: a signed calibration, measured results."""

from __future__ import annotations

import json
from pathlib import Path

from digitguard.cli import main
from digitguard.models.artifact import load_verified
from tests.conftest import KeyPair


def run(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_calibrate_stores_a_signed_threshold_and_evaluate_measures_it(
    small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, tmp_path: Path, capsys
) -> None:
    trust = ["--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    assert (
        run(
            "detector",
            "calibrate",
            str(small_model_dir),
            "--key",
            str(trusted_key.private),
            "--fpr",
            "0.1",
            *trust,
        )
        == 0
    )
    calibration = load_verified(small_model_dir, [trusted_key.trust_dir]).manifest.metrics[
        "adversarial_detector"
    ]
    assert calibration["calibration_images"] == 200 and calibration["false_positive_rate"] == 0.1
    assert "validation split" in calibration["source"] and "seed 3" in calibration["source"]
    out = tmp_path / "report"
    args = ["--samples", "6", "--cw-samples", "0", "--steps", "2", "--out", str(out), "--json"]
    assert run("detector", "evaluate", str(small_model_dir), *args, *trust) == 0
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [row["attack"] for row in document["attacks"]] == [
        "fgsm",
        "pgd",
        "squeeze-aware-pgd",
        "binarised-search",
        "worst-case",
    ]
    assert document["detector"] == calibration and document["clean_test"]["images"] == 10000
    assert json.loads((out / "detector-result.json").read_text()) == document


def test_an_untrusted_signer_leaves_the_model_as_it_was(
    small_model_dir: Path, signing_keys: tuple[KeyPair, KeyPair], mnist_dir: Path
) -> None:
    trusted, other = signing_keys
    before = {path.name: path.read_bytes() for path in small_model_dir.iterdir()}
    status = run(
        "detector", "calibrate", str(small_model_dir), "--key", str(other.private),
        "--trust", str(trusted.trust_dir), "--data-dir", str(mnist_dir),
    )  # fmt: skip
    assert status != 0
    assert {path.name: path.read_bytes() for path in small_model_dir.iterdir()} == before
    assert not list(small_model_dir.parent.glob(".model.*"))  # no staging left behind


def test_evaluate_refuses_a_model_without_a_calibration(small_model_dir: Path, trusted_key: KeyPair) -> None:
    assert run("detector", "evaluate", str(small_model_dir), "--trust", str(trusted_key.trust_dir)) == 2


def test_calibrating_on_canvas_drawings_records_it_and_flags_them_at_the_chosen_rate(
    small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path
) -> None:
    import torch

    from digitguard.data import mnist
    from digitguard.defences.squeeze import detector_scores
    from digitguard.detector_cli import validation_images
    from digitguard.inference.redraw import redrawn_inputs

    trust = ["--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    key = ["--key", str(trusted_key.private), "--fpr", "0.1"]
    assert run("detector", "calibrate", str(small_model_dir), *key, "--on", "canvas", *trust) == 0
    verified = load_verified(small_model_dir, [trusted_key.trust_dir])
    calibration = verified.manifest.metrics["adversarial_detector"]
    assert "re-drawn as canvas PNGs" in calibration["source"]
    digits = validation_images(mnist.load(mnist_dir), verified.manifest.training)
    drawn = redrawn_inputs((digits[:, 0] * 255).round().to(torch.uint8).numpy())
    flagged = float((detector_scores(verified.model, drawn) > calibration["threshold"]).double().mean())
    assert flagged <= 0.1 and drawn.shape == digits.shape
