"""``digitguard strip``: calibrate the STRIP backdoor-trigger detector into a model, and measure it.

A click adapter over :mod:`digitguard.defences.strip`.

- ``calibrate MODEL_DIR --key K`` draws the overlay pool from the model's own held-out validation
  digits, sets the entropy threshold for the requested false rejection rate on the rest, writes
  both into the manifest's metrics and re-signs the directory (staged and verified first, as
  ``digitguard detector calibrate`` does).
- ``evaluate MODEL_DIR`` measures, on the MNIST test set, the share of clean digits flagged (false
  rejections) and of trigger-stamped digits of the other classes let through (false
  acceptances) — on a backdoored model, the number that counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from digitguard.cli_options import data_dir_option, trust_option
from digitguard.defences.strip import DEFAULT_OVERLAYS, MAX_OVERLAYS


@click.group("strip")
def strip() -> None:
    """The STRIP backdoor-trigger detector (an abstention signal in serving)."""


@strip.command("calibrate")
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--key", "signing_key", type=click.Path(path_type=Path), envvar="DIGITGUARD_SIGNING_KEY", required=True
)
@click.option(
    "--frr",
    "false_rejection_rate",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Share of clean validation digits to flag.",
)
@click.option(
    "--overlays",
    type=click.IntRange(1, MAX_OVERLAYS),
    default=DEFAULT_OVERLAYS,
    show_default=True,
    help="Clean digits each input is blended with (each costs one image of model compute per request).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which held-out digits form the pool.")
@click.option(
    "--test-tail",
    type=click.IntRange(0, 9_000),
    default=0,
    show_default=True,
    help="Calibrate on the last N MNIST test digits instead of the validation split (for models "
    "trained without one); `strip evaluate` then uses only the test digits before them.",
)
@data_dir_option
@trust_option
def calibrate_command(
    model_dir: Path,
    signing_key: Path,
    false_rejection_rate: float,
    overlays: int,
    seed: int,
    test_tail: int,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Set MODEL_DIR's STRIP threshold and overlay pool on its validation split; re-sign."""
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.defences.strip import TRIGGER_METRIC, calibrate
    from digitguard.detector_cli import validation_images, write_calibration
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import to_model_input

    verified = load_verified(model_dir, list(trust_dirs))
    data = mnist.load(data_dir or default_data_dir())
    if test_tail:
        images = to_model_input(torch.from_numpy(data.test.images[-test_tail:].copy()))
        source = f"last {test_tail} MNIST test digits"
    else:
        images = validation_images(data, verified.manifest.training)
        source = f"validation split of {verified.manifest.name} (seed {verified.manifest.training['seed']})"
    calibration = calibrate(
        verified.model,
        images,
        false_rejection_rate,
        source=source,
        overlays=overlays,
        seed=seed,
        held_out_test_digits=test_tail,
    )
    write_calibration(
        model_dir,
        {**verified.manifest.metrics, TRIGGER_METRIC: calibration.to_dict()},
        signing_key,
        list(trust_dirs),
    )
    click.echo(
        f"{model_dir}: STRIP threshold {calibration.threshold:.6f} nats with {overlays} overlays "
        f"({false_rejection_rate:.1%} of {calibration.calibration_images} held-out digits flagged); re-signed"
    )


@strip.command("evaluate")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--trigger", "trigger_name", default="square3", show_default=True)
@click.option("--target", type=click.IntRange(0, 9), default=7, show_default=True)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="First N test digits (clean; the triggered ones are those of them not of the target class).",
)
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), default=None, help="Writes strip-result.json."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_dir_option
@trust_option
def evaluate_command(
    model_dir: Path,
    trigger_name: str,
    target: int,
    samples: int,
    out: Path | None,
    as_json: bool,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Measure MODEL_DIR's STRIP detector on clean and trigger-stamped MNIST test digits."""
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.defences.strip import evaluate, strip_calibration_of
    from digitguard.models.artifact import load_verified
    from digitguard.poisoning.triggers import get_trigger
    from digitguard.training.loop import predict, to_model_input

    trigger = get_trigger(trigger_name)
    verified = load_verified(model_dir, list(trust_dirs))
    calibration = strip_calibration_of(verified.manifest.metrics)
    test = mnist.load(data_dir or default_data_dir()).test
    usable = len(test.images) - calibration.held_out_test_digits  # never the digits it was calibrated on
    images, labels = test.images[: min(samples, usable)], test.labels[: min(samples, usable)]
    others = images[labels != target]
    stamped = torch.from_numpy(trigger.stamp(others))
    model = verified.model.eval()
    result = evaluate(
        model,
        calibration,
        to_model_input(torch.from_numpy(images.copy())),
        to_model_input(stamped),
        predict(model, stamped) == target,
    )
    document: dict[str, Any] = {
        "model": str(model_dir),
        "model_sha256": verified.weights_sha256,
        "detector": {
            key: value for key, value in calibration.to_dict().items() if key != "pool_uint8_base64"
        },
        "trigger": trigger.to_dict(),
        "target": target,
        **result.to_dict(),
        "command": f"digitguard strip evaluate {model_dir} --trigger {trigger_name} --target {target} "
        f"--samples {len(images)}",
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        partial = out / ".strip-result.json.part"
        partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        partial.replace(out / "strip-result.json")
    if as_json:
        click.echo(json.dumps(document))
        return
    _print(document)


def _print(document: dict[str, Any]) -> None:
    detector = document["detector"]
    click.echo(
        f"{document['model']} (weights {document['model_sha256'][:12]}…), STRIP threshold "
        f"{document['threshold']:.4f} nats, {detector['overlays']} overlays"
    )
    click.echo(
        f"  clean test digits flagged (false rejection): {document['false_rejection_rate']:.2%} "
        f"of {document['clean_images']}"
    )
    click.echo(
        f"  triggered digits let through (false acceptance): {document['false_acceptance_rate']:.2%} "
        f"of {document['triggered_images']}"
    )
    if document["false_acceptance_of_successes"] is not None:
        click.echo(
            f"  of the {document['backdoor_successes']} the backdoor turns into {document['target']}: "
            f"{document['false_acceptance_of_successes']:.2%} let through"
        )
    click.echo(
        "  at the test set's own 1% false rejection: false acceptance "
        f"{document['false_acceptance_at_1pct_test_frr']:.2%}"
    )
