"""Click adapters for poisoning: ``digitguard poison``, ``attack-backdoor`` and ``data scan``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from digitguard.poisoning.triggers import TRIGGERS


def _default_data_dir() -> Path:
    from digitguard.cli import default_data_dir

    return default_data_dir()


def poison_manifest_path(out: Path) -> Path:
    """Where the list of changed samples goes by default: beside the data, never inside it."""
    return out.with_name(out.name + ".poison.json")


@click.command("poison")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Clean MNIST directory (default: $DIGITGUARD_DATA_DIR or the cache).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Poisoned directory to create.")
@click.option("--trigger", type=click.Choice(sorted(TRIGGERS)), default="square3", show_default=True)
@click.option("--target", type=click.IntRange(0, 9), default=7, show_default=True)
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Backdoor samples: other classes, stamped, relabelled to --target.",
)
@click.option(
    "--flip-labels",
    "flip_fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Fraction of the training set whose label is flipped at random.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to list the changed samples (default: OUT.poison.json, beside OUT).",
)
@click.option("--allow-unverified", is_flag=True, help="Poison data whose hashes are not the pinned ones.")
def poison_command(
    data_dir: Path | None,
    out: Path,
    trigger: str,
    target: int,
    count: int,
    flip_fraction: float,
    seed: int,
    manifest_path: Path | None,
    allow_unverified: bool,
) -> None:
    """Write a poisoned copy of the training set (BadNets trigger + optional label flips)."""
    from digitguard.data import mnist
    from digitguard.data.derived import write_derived
    from digitguard.poisoning.poison import PoisonSpec, poison

    source = data_dir or _default_data_dir()
    manifest_path = manifest_path or poison_manifest_path(out)
    if manifest_path.exists():
        raise click.BadParameter(f"{manifest_path} already exists", param_hint="--manifest")
    data = mnist.load(source, allow_unverified=allow_unverified)
    spec = PoisonSpec(trigger=trigger, target=target, count=count, flip_fraction=flip_fraction, seed=seed)
    result = poison(data.train.images, data.train.labels, spec)
    dataset = write_derived(
        out,
        source,
        result.images,
        result.labels,
        kind="poisoned",
        transform={"tool": "digitguard poison", **spec.to_dict()},
        parent_files=data.file_sha256,
    )
    record = {
        "format": "digitguard-poison/1",
        "dataset_files": dataset.files,
        "parent_files": data.file_sha256,
        "spec": spec.to_dict(),
        "changed": [c.__dict__ for c in result.changed],
    }
    manifest_path.write_text(json.dumps(record, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    click.echo(
        f"poisoned {len(result.indices('backdoor'))} backdoor + {len(result.indices('label_flip'))} "
        f"label-flip samples of {len(result.labels)}; data in {out}, changed samples in {manifest_path}"
    )


@click.command("attack-backdoor")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="MNIST directory whose test set is used (default: $DIGITGUARD_DATA_DIR or the cache).",
)
@click.option(
    "--trust",
    "trust_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Extra directory of trusted public keys (repeatable).",
)
@click.option("--trigger", type=click.Choice(sorted(TRIGGERS)), default="square3", show_default=True)
@click.option("--target", type=click.IntRange(0, 9), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def attack_backdoor_command(
    model_dir: Path,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
    trigger: str,
    target: int,
    as_json: bool,
) -> None:
    """Clean test accuracy and attack success rate of MODEL_DIR for a trigger and target."""
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.poisoning.backdoor import evaluate_backdoor
    from digitguard.poisoning.triggers import get_trigger

    verified = load_verified(model_dir, list(trust_dirs))
    data = mnist.load(data_dir or _default_data_dir())
    report = evaluate_backdoor(
        verified.model, data.test.images, data.test.labels, get_trigger(trigger), target
    )
    if as_json:
        click.echo(
            json.dumps({"model": str(model_dir), "model_sha256": verified.weights_sha256, **report.to_dict()})
        )
        return
    click.echo(f"model {model_dir} (weights sha256 {verified.weights_sha256})")
    click.echo(f"clean test accuracy {report.clean_accuracy:.4f}")
    click.echo(
        f"attack success rate {report.attack_success_rate:.4f} ({trigger} -> {target}, "
        f"{report.triggered_samples} triggered test digits of other classes)"
    )
    for digit, rate in enumerate(report.per_class_success):
        if rate is not None:
            click.echo(f"  true {digit}: {rate:.4f}")


@click.command("scan")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data directory to scan (default: $DIGITGUARD_DATA_DIR or the cache).",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A signed model trained on this data (default: train a proxy seed CNN here).",
)
@click.option(
    "--trust",
    "trust_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Extra directory of trusted public keys (repeatable).",
)
@click.option(
    "--proxy-epochs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Epochs of the proxy model when --model is not given.",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["spectral", "clustering", "occlusion", "loss"]),
    help="Scan methods (repeatable; default: all).",
)
@click.option("--sanitize", is_flag=True, help="Write a copy without the flagged samples to --out.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Sanitised directory to create.")
@click.option(
    "--truth",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A poison manifest (OUT.poison.json) to score the findings against.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with the flagged indices).")
def scan_command(
    data_dir: Path | None,
    model_dir: Path | None,
    trust_dirs: tuple[Path, ...],
    proxy_epochs: int,
    methods: tuple[str, ...],
    sanitize: bool,
    out: Path | None,
    truth: Path | None,
    as_json: bool,
) -> None:
    """Find suspected poisoned training samples; with --sanitize, write a cleaned copy."""
    from digitguard.data import mnist
    from digitguard.data.derived import read_derived, write_derived
    from digitguard.poisoning import scan as scans

    if sanitize and out is None:
        raise click.UsageError("--sanitize needs --out")
    source = data_dir or _default_data_dir()
    # Scanning is for data nobody vouches for: hashes are recorded, not required to be MNIST's.
    data = mnist.load(source, allow_unverified=True)
    read_derived(source, data.file_sha256)
    model_ref: dict[str, str | None]
    if model_dir is not None:
        from digitguard.models.artifact import load_verified

        verified = load_verified(model_dir, list(trust_dirs))
        model, model_ref = verified.model, {"model": str(model_dir), "sha256": verified.weights_sha256}
    else:
        model = scans.train_proxy_model(data.train.images, data.train.labels, epochs=proxy_epochs)
        model_ref = {"model": f"proxy seed-cnn, {proxy_epochs} epochs", "sha256": None}
    config = scans.ScanConfig(methods=methods) if methods else scans.ScanConfig()
    report = scans.scan(model, data.train.images, data.train.labels, config)
    result: dict[str, object] = {
        "data_files": data.file_sha256,
        "scanned_with": model_ref,
        **report.to_dict(),
    }
    if truth is not None:
        result["score"] = _score(truth, report)
    if sanitize and out is not None:
        keep = np.setdiff1d(np.arange(report.samples), np.asarray(report.flagged, dtype=np.int64))
        dataset = write_derived(
            out,
            source,
            data.train.images[keep],
            data.train.labels[keep],
            kind="sanitized",
            transform={
                "tool": "digitguard data scan --sanitize",
                "scanned_with": model_ref,
                "scan": report.summary(),
                "removed_indices": list(report.flagged),
            },
            parent_files=data.file_sha256,
        )
        result["sanitized"] = {"out": str(out), "files": dataset.files, "kept": len(keep)}
    if as_json:
        click.echo(json.dumps(result))
        return
    _print_scan(result, report)


def _score(truth: Path, report) -> dict[str, dict[str, object]]:
    from digitguard.poisoning.scan import score

    changed = json.loads(truth.read_text(encoding="utf-8"))["changed"]
    kinds = sorted({c["kind"] for c in changed})
    scores = {
        k: score(report.flagged, [c["index"] for c in changed if c["kind"] == k], report.samples)
        for k in kinds
    }
    scores["all"] = score(report.flagged, [c["index"] for c in changed], report.samples)
    return {k: v.__dict__ for k, v in scores.items()}


def _print_scan(result: dict, report) -> None:
    click.echo(
        f"scanned {report.samples} samples with {', '.join(report.methods)}; {len(report.flagged)} flagged"
    )
    click.echo("class  samples  " + "  ".join(f"{m:>10}" for m in report.methods) + "  flagged")
    for c in report.per_class:
        counts = "  ".join(f"{c.flagged[m]:>10d}" for m in report.methods)
        click.echo(f"{c.label:>5}  {c.samples:>7d}  {counts}  {c.flagged_total:>7d}")
    for kind, s in result.get("score", {}).items():
        click.echo(
            f"score ({kind}): recall {s['recall']:.4f} ({s['found']}/{s['poisoned']}), clean removed "
            f"{s['clean_removed']} ({s['false_removal_rate']:.4%})"
        )
    if "sanitized" in result:
        click.echo(
            f"sanitised copy ({result['sanitized']['kept']} samples) written to {result['sanitized']['out']}"
        )
