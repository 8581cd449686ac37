"""``digitguard detector``: calibrate the adversarial-input detector into a model, and measure it.

A click adapter: arguments in, calls of :mod:`digitguard.defences` out.

- ``calibrate MODEL_DIR --key K`` scores the model's own held-out validation digits (the split
  its training run set aside, rebuilt from the manifest's seed and size), picks the threshold
  for the requested false-positive rate, writes it into the manifest's metrics and re-signs the
  directory. The new directory is staged, signed and verified beside the old one and only then
  swapped in, so a failure leaves the model as it was.
- ``evaluate MODEL_DIR`` runs FGSM, PGD, C&W and the two adaptive attacks (straight-through
  squeeze-aware PGD and the binarised-image search) at ε and reports, per attack, robust
  accuracy, the detector's true-positive rate on the examples that fool the classifier, and the
  share of attacked inputs that are classified correctly or flagged — and the same for the worst
  case per image over every attack run on all the images (all but C&W's subset).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from digitguard.cli_options import data_dir_option, trust_option
from digitguard.outputs import json_bytes, write_outputs

EVALUATED_ATTACKS = ("fgsm", "pgd", "cw", "adaptive", "binarised-search")


@click.group("detector")
def detector() -> None:
    """The feature-squeezing adversarial-input detector (an abstention signal in serving)."""


def _data_dir_option(function: Any) -> Any:
    return data_dir_option(trust_option(function))


@detector.command("calibrate")
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--key", "signing_key", type=click.Path(path_type=Path), envvar="DIGITGUARD_SIGNING_KEY", required=True
)
@click.option(
    "--fpr",
    "false_positive_rate",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.045,
    show_default=True,
    help="Share of clean validation digits to flag (below 5% so that test digits stay under it).",
)
@click.option(
    "--on",
    "source",
    type=click.Choice(["mnist", "canvas"]),
    default="mnist",
    show_default=True,
    help="Calibrate on the validation digits as they are, or re-drawn as canvas PNGs and brought "
    "back through the serving input path (what the drawing page sends).",
)
@_data_dir_option
def calibrate_command(
    model_dir: Path,
    signing_key: Path,
    false_positive_rate: float,
    source: str,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Choose the detector's threshold on MODEL_DIR's validation split; store it in its manifest; re-sign."""
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.defences.squeeze import DETECTOR_METRIC, calibrate
    from digitguard.models.artifact import load_verified

    verified = load_verified(model_dir, list(trust_dirs))
    images = validation_images(mnist.load(data_dir or default_data_dir()), verified.manifest.training)
    described = f"validation split of {verified.manifest.name} (seed {verified.manifest.training['seed']})"
    if source == "canvas":
        from digitguard.inference.redraw import redrawn_inputs

        digits = (images[:, 0] * 255).round().to(torch.uint8).numpy()
        images, described = redrawn_inputs(digits), f"{described}, re-drawn as canvas PNGs (seed 0)"
    calibration = calibrate(verified.model, images, false_positive_rate, source=described)
    metrics = {**verified.manifest.metrics, DETECTOR_METRIC: calibration.to_dict()}
    write_calibration(model_dir, metrics, signing_key, list(trust_dirs))
    click.echo(
        f"{model_dir}: feature-squeezing threshold {calibration.threshold:.6f} "
        f"({false_positive_rate:.1%} of {len(images)} validation digits flagged); re-signed"
    )


def validation_images(data: Any, training: dict[str, Any]) -> Any:
    """The validation digits a training run held out, rebuilt from its seed and size (``split_data``)."""
    from digitguard.training.loop import to_model_input
    from digitguard.training.run import recorded_splits

    if int(training.get("validation_size", 0)) < 1:
        raise click.UsageError(
            "the model was trained without a validation split; nothing held out to calibrate on"
        )
    return to_model_input(recorded_splits(data, training).val_images)


def write_calibration(
    model_dir: Path, metrics: dict[str, Any], signing_key: Path, trust_dirs: list[Path] | None = None
) -> None:
    """Replace ``model_dir`` by a copy whose manifest carries ``metrics``, signed and verified first."""
    import dataclasses

    from digitguard.models.artifact import load_verified
    from digitguard.models.manifest import MANIFEST_FILE, ModelManifest
    from digitguard.models.signing import SIGNATURE_FILE, sign_directory

    model_dir = Path(model_dir).resolve()
    staging_parent = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", suffix=".tmp", dir=model_dir.parent))
    try:
        staging = staging_parent / model_dir.name  # the signature records the directory name
        shutil.copytree(model_dir, staging)
        manifest = ModelManifest.from_json((staging / MANIFEST_FILE).read_text(encoding="utf-8"))
        (staging / MANIFEST_FILE).write_text(
            dataclasses.replace(manifest, metrics=metrics).to_json(), encoding="utf-8"
        )
        (staging / SIGNATURE_FILE).unlink()
        sign_directory(staging, signing_key)
        load_verified(staging, trust_dirs)  # the signer must be trusted, and everything must still check
        retired = staging_parent / f"{model_dir.name}.old"
        os.rename(model_dir, retired)
        os.rename(staging, model_dir)
    finally:
        shutil.rmtree(staging_parent, ignore_errors=True)


@detector.command("evaluate")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--eps", type=click.FloatRange(0, 1, min_open=True), default=0.3, show_default=True)
@click.option(
    "--samples", type=click.IntRange(min=1), default=1000, show_default=True, help="Test images attacked."
)
@click.option(
    "--cw-samples", type=click.IntRange(min=0), default=100, show_default=True, help="Of those, for C&W."
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=100, show_default=True, help="PGD and adaptive steps."
)
@click.option(
    "--restarts", type=click.IntRange(min=1), default=1, show_default=True, help="Adaptive restarts per mode."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Writes detector-result.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_data_dir_option
def evaluate_command(
    model_dir: Path,
    eps: float,
    samples: int,
    cw_samples: int,
    steps: int,
    restarts: int,
    seed: int,
    out: Path | None,
    as_json: bool,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Measure the calibrated detector of MODEL_DIR on MNIST test digits, clean and attacked."""
    import numpy as np
    import torch

    from digitguard.attacks.adaptive import SqueezeAwarePGD
    from digitguard.attacks.art_attacks import CarliniWagnerLinf
    from digitguard.attacks.binarised_search import BinarisedSearchAttack
    from digitguard.attacks.fgsm import FGSM
    from digitguard.attacks.pgd import PGD
    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.defences.evaluate import clean_flag_rate, evaluate_detection, evaluate_worst_case
    from digitguard.defences.squeeze import calibration_of
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import to_model_input

    verified = load_verified(model_dir, list(trust_dirs))
    calibration = calibration_of(verified.manifest.metrics)
    model, threshold = verified.model.eval(), calibration.threshold
    test = mnist.load(data_dir or default_data_dir()).test
    images = to_model_input(torch.from_numpy(test.images.copy()))
    labels = torch.from_numpy(test.labels.astype(np.int64))
    makers = {
        "fgsm": lambda e: FGSM(model, e),
        "pgd": lambda e: PGD(model, e, steps=steps, seed=seed),
        "cw": lambda e: CarliniWagnerLinf(model, e, seed=seed),
        "adaptive": lambda e: SqueezeAwarePGD(
            model, e, threshold=threshold, steps=steps, restarts=restarts, seed=seed
        ),
        "binarised-search": lambda e: BinarisedSearchAttack(
            model, e, threshold=threshold, steps=steps, seed=seed
        ),
    }
    on_all = [makers[name] for name in EVALUATED_ATTACKS if name != "cw"]
    worst = evaluate_worst_case(model, on_all, images[:samples], labels[:samples], eps, threshold)
    results = [result.to_dict() for result in worst]
    count = min(samples, cw_samples)
    if count:
        cw = evaluate_detection(model, makers["cw"], images[:count], labels[:count], eps, threshold)
        results.append(cw.to_dict())
    document: dict[str, Any] = {
        "model": str(model_dir),
        "model_sha256": verified.weights_sha256,
        "detector": calibration.to_dict(),
        "clean_test": clean_flag_rate(model, images, labels, threshold),
        "eps": eps,
        "attacks": results,
        "command": f"digitguard detector evaluate {model_dir} --eps {eps} --samples {samples} "
        f"--cw-samples {cw_samples} --steps {steps} --restarts {restarts} --seed {seed}",
    }
    if out is not None:
        write_outputs(out, {"detector-result.json": json_bytes(document)})
    if as_json:
        click.echo(json.dumps(document))
    else:
        _print(document)


def _print(document: dict[str, Any]) -> None:
    clean = document["clean_test"]
    click.echo(
        f"{document['model']} (weights {document['model_sha256'][:12]}…), threshold "
        f"{document['detector']['threshold']:.6f}: clean test digits flagged {clean['flagged']:.2%} "
        f"(accuracy {clean['accuracy']:.2%}, {clean['accuracy_of_unflagged']:.2%} of the unflagged)"
    )
    click.echo(f"{'attack':<24}{'images':>7}{'robust acc':>12}{'fooled':>8}{'TPR':>8}{'correct|flagged':>17}")
    for row in document["attacks"]:
        click.echo(
            f"{row['attack'] + ' ε=' + format(row['eps'], 'g'):<24}{row['images']:>7}"
            f"{row['robust_accuracy']:>12.2%}{row['fooled']:>8}{row['flagged_of_fooled']:>8.2%}{row['correct_or_flagged']:>17.2%}"
        )
