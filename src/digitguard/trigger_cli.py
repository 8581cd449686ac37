"""``digitguard trigger``: calibrate a backdoor-trigger detector into a model, and measure it.

A click adapter over :mod:`digitguard.defences.trigger` (patch occlusion, the default, or STRIP).

- ``calibrate MODEL_DIR --key K [--method occlusion|strip]`` scores the model's own held-out
  validation digits (STRIP first draws its overlay pool from them), sets the threshold for the
  requested false rejection rate, writes the calibration into the manifest's metrics and re-signs
  the directory (staged and verified first, as ``digitguard detector calibrate`` does).
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
from digitguard.defences.occlusion import DEFAULT_WINDOW
from digitguard.defences.strip import DEFAULT_OVERLAYS, MAX_OVERLAYS
from digitguard.outputs import json_bytes, write_outputs


@click.group("trigger")
def trigger() -> None:
    """Backdoor-trigger detectors: patch occlusion and STRIP (an abstention signal in serving)."""


@trigger.command("calibrate")
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--key", "signing_key", type=click.Path(path_type=Path), envvar="DIGITGUARD_SIGNING_KEY", required=True
)
@click.option(
    "--method",
    type=click.Choice(["occlusion", "strip"]),
    default="occlusion",
    show_default=True,
    help="occlusion: blank the most salient patch (SentiNet-style); strip: blend with clean digits.",
)
@click.option(
    "--frr",
    "false_rejection_rate",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Share of clean held-out digits to flag.",
)
@click.option(
    "--window",
    type=click.IntRange(1, 8),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="occlusion: patch side.",
)
@click.option(
    "--overlays",
    type=click.IntRange(1, MAX_OVERLAYS),
    default=DEFAULT_OVERLAYS,
    show_default=True,
    help="strip: clean digits each input is blended with (each one image of compute per request).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="strip: which held-out digits form the pool."
)
@click.option(
    "--test-tail",
    type=click.IntRange(0, 9_000),
    default=0,
    show_default=True,
    help="Calibrate on the last N MNIST test digits instead of the validation split (for models "
    "trained without one); `trigger evaluate` then uses only the test digits before them.",
)
@data_dir_option
@trust_option
def calibrate_command(
    model_dir: Path,
    signing_key: Path,
    method: str,
    false_rejection_rate: float,
    window: int,
    overlays: int,
    seed: int,
    test_tail: int,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Calibrate MODEL_DIR's trigger detector on held-out digits; store it in the manifest; re-sign."""
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.defences import occlusion, strip
    from digitguard.defences.trigger import TRIGGER_METRIC
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
    calibration: Any
    if method == "strip":
        calibration = strip.calibrate(
            verified.model,
            images,
            false_rejection_rate,
            source,
            overlays,
            seed,
            held_out_test_digits=test_tail,
        )
    else:
        calibration = occlusion.calibrate(
            verified.model, images, false_rejection_rate, source, window, held_out_test_digits=test_tail
        )
    metrics = {**verified.manifest.metrics, TRIGGER_METRIC: calibration.to_dict()}
    write_calibration(model_dir, metrics, signing_key, list(trust_dirs))
    click.echo(
        f"{model_dir}: {calibration.kind} threshold {calibration.threshold:.6f} "
        f"({false_rejection_rate:.1%} of {calibration.calibration_images} held-out digits flagged); re-signed"
    )


@trigger.command("evaluate")
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
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Writes trigger-result.json.",
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
    """Measure MODEL_DIR's trigger detector on clean and trigger-stamped MNIST test digits."""
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.defences.trigger import evaluate, trigger_calibration_of
    from digitguard.models.artifact import load_verified
    from digitguard.poisoning.triggers import get_trigger
    from digitguard.training.loop import predict, to_model_input

    stamp = get_trigger(trigger_name)
    verified = load_verified(model_dir, list(trust_dirs))
    calibration = trigger_calibration_of(verified.manifest.metrics)
    test = mnist.load(data_dir or default_data_dir()).test
    usable = len(test.images) - calibration.held_out_test_digits  # never the digits it was calibrated on
    images, labels = test.images[: min(samples, usable)], test.labels[: min(samples, usable)]
    stamped = torch.from_numpy(stamp.stamp(images[labels != target]))
    model = verified.model.eval()
    with torch.no_grad():
        fooled = predict(model, stamped) == target
    result = evaluate(
        model, calibration, to_model_input(torch.from_numpy(images.copy())), to_model_input(stamped), fooled
    )
    settings = {key: value for key, value in calibration.to_dict().items() if key != "pool_uint8_base64"}
    document: dict[str, Any] = {
        "model": str(model_dir),
        "model_sha256": verified.weights_sha256,
        "detector": settings,
        "trigger": stamp.to_dict(),
        "target": target,
        **result.to_dict(),
        "command": f"digitguard trigger evaluate {model_dir} --trigger {trigger_name} --target {target} "
        f"--samples {len(images)}",
    }
    if out is not None:
        write_outputs(out, {"trigger-result.json": json_bytes(document)})
    if as_json:
        click.echo(json.dumps(document))
    else:
        _print(document)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _print(document: dict[str, Any]) -> None:
    click.echo(
        f"{document['model']} (weights {document['model_sha256'][:12]}…), {document['detector']['kind']} "
        f"threshold {document['threshold']:.4f}"
    )
    click.echo(
        f"  clean test digits flagged (false rejection): {_pct(document['false_rejection_rate'])} "
        f"of {document['clean_images']}"
    )
    click.echo(
        f"  triggered digits let through (false acceptance): {_pct(document['false_acceptance_rate'])} "
        f"of {document['triggered_images']}; of the {document['backdoor_successes']} the backdoor turns "
        f"into {document['target']}: {_pct(document['false_acceptance_of_successes'])}"
    )
    click.echo(
        "  at the test set's own 1% false rejection: false acceptance "
        f"{_pct(document['false_acceptance_at_1pct_test_frr'])}, of the successes "
        f"{_pct(document['false_acceptance_of_successes_at_1pct_test_frr'])}"
    )
