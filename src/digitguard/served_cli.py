"""``digitguard served evaluate``: the served decision measured on what users and attackers send.

A thin adapter over :mod:`digitguard.evaluation.served`: it loads the verified models and the
data, runs the chosen suites and writes one evidence file per suite (the models' hashes, the
samples, every attack's settings and the command that produced it).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from digitguard.cli_options import data_dir_option, trust_option

SUITES = ("clean", "drawing", "junk", "adversarial")
DECISION_ATTACKS = ("autoattack-reference", "decision-pgd", "pgd", "autoattack")


@click.group()
def served() -> None:
    """The served decision (primary model, gate, threshold) under evaluation."""


@served.command("evaluate")
@click.option("--model", "model_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--gate", "gate_dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--abstain-below", type=click.FloatRange(0, 1), default=0.7, show_default=True)
@click.option(
    "--suite", "suites", type=click.Choice(SUITES), multiple=True, help="Repeatable (default: all)."
)
@click.option(
    "--first",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Test images for drawing and adversarial suites.",
)
@click.option("--junk-per-family", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--eps", type=click.FloatRange(0, 1, min_open=True), default=0.3, show_default=True)
@click.option(
    "--attacks",
    default=",".join(DECISION_ATTACKS[:2]),
    show_default=True,
    help=f"Comma-separated, worst case per image over all: {', '.join(DECISION_ATTACKS)}.",
)
@click.option(
    "--targets", type=click.IntRange(1, 9), default=9, show_default=True, help="decision-pgd's targets."
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=100, show_default=True, help="decision-pgd's steps."
)
@click.option("--restarts", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=50, show_default=True, help="Adversarial batches."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted adversarial run from its shards.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@data_dir_option
@trust_option
def evaluate(
    model_dir: Path,
    gate_dir: Path | None,
    abstain_below: float,
    suites: tuple[str, ...],
    first: int,
    junk_per_family: int,
    eps: float,
    attacks: str,
    targets: int,
    steps: int,
    restarts: int,
    seed: int,
    batch_size: int,
    resume: bool,
    out: Path,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Measure the served decision: clean test digits, drawing styles, non-digits, attacks.

    Under ``torchrun --nproc_per_node N`` the adversarial suite is shared out over the N processes
    (resumable with --resume; the merged results do not depend on N); the other suites run in
    process 0 only.
    """
    import torch

    from digitguard.models.artifact import load_verified
    from digitguard.training import distributed

    attack_names = _attack_names(attacks)
    primary = load_verified(model_dir, list(trust_dirs))
    gate = load_verified(gate_dir, list(trust_dirs)) if gate_dir is not None else None
    from digitguard.inference.decision import ServedDecision

    decision = ServedDecision(primary.model.eval(), gate.model.eval() if gate else None, abstain_below)
    test_images, test_labels, train_digits = _test_data(data_dir)
    header = {
        "command": shlex.join(["digitguard", *sys.argv[1:]]),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": str(model_dir),
        "model_sha256": primary.weights_sha256,
        "gate": str(gate_dir) if gate_dir else None,
        "gate_sha256": gate.weights_sha256 if gate else None,
        "abstain_below": abstain_below,
        "torch_threads": torch.get_num_threads(),
    }
    out.mkdir(parents=True, exist_ok=True)
    cluster = distributed.join()
    options = _Options(
        first,
        junk_per_family,
        eps,
        attack_names,
        targets,
        steps,
        restarts,
        seed,
        primary.weights_sha256,
        gate.weights_sha256 if gate else None,
        out / "adversarial-shards",
        batch_size,
        resume,
        cluster,
    )
    try:
        _run_suites(
            decision, suites or SUITES, (test_images, test_labels, train_digits), options, header, out
        )
    finally:
        cluster.leave(decision)


def _run_suites(decision, suites, data, options: _Options, header: dict[str, Any], out: Path) -> None:
    for suite in suites:
        if suite != "adversarial" and not options.cluster.is_writer:
            continue
        click.echo(f"suite {suite} …", err=True)
        result = _SUITE_RUNNERS[suite](decision, *data, options)
        if not options.cluster.is_writer:
            continue
        path = out / f"served-{suite}.json"
        path.write_text(json.dumps({**header, "suite": suite, **result}, indent=1, sort_keys=True) + "\n")
        click.echo(f"{suite}: {json.dumps(result.get('summary', {}), sort_keys=True)}  → {path}")


@dataclass(frozen=True)
class _Options:
    first: int
    junk_per_family: int
    eps: float
    attacks: tuple[str, ...]
    targets: int
    steps: int
    restarts: int
    seed: int
    model_sha256: str
    gate_sha256: str | None
    shards: Path
    batch_size: int
    resume: bool
    cluster: Any


def _attack_names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in DECISION_ATTACKS]
    if not names or unknown:
        raise click.BadParameter(f"attacks must be among {', '.join(DECISION_ATTACKS)}; got {text!r}")
    return names


def _test_data(data_dir: Path | None):
    import numpy as np
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.training.loop import to_model_input

    data = mnist.load(data_dir or default_data_dir())
    images = to_model_input(torch.from_numpy(data.test.images.copy()))
    labels = torch.from_numpy(data.test.labels.astype(np.int64))
    return images, labels, data.train.images


def _clean(decision, images, labels, _train, _options) -> dict[str, Any]:
    from digitguard.evaluation.served import outcomes

    result = outcomes(decision, images, labels).to_dict()
    return {"sample": f"MNIST test images 0–{len(labels) - 1}", "summary": result}


def _drawing(decision, images, labels, _train, options: _Options) -> dict[str, Any]:
    from digitguard.evaluation.served import drawing_styles, pooled

    n = options.first
    styles = drawing_styles(decision, images[:n], labels[:n], seed=options.seed)
    return {
        "sample": f"MNIST test images 0–{n - 1}, each drawn in every style, as canvas PNGs",
        "summary": pooled(styles).to_dict(),
        "styles": {name: result.to_dict() for name, result in styles.items()},
    }


def _junk(decision, _images, _labels, train_digits, options: _Options) -> dict[str, Any]:
    from digitguard.data import junk
    from digitguard.evaluation.served import from_pngs, refusals

    families: dict[str, Any] = {}
    for offset, family in enumerate(junk.FAMILIES):
        samples = junk.junk_canvases(
            options.junk_per_family, options.seed + 1000 + offset, families=(family,), digits_u8=train_digits
        )
        canvas = from_pngs([junk.canvas_png(sample.canvas) for sample in samples])
        families[family] = {
            **refusals(decision, canvas).to_dict(),
            "held_out": family in junk.HELD_OUT_FAMILIES,
        }
    return {
        "sample": f"{options.junk_per_family} canvases per non-digit family (seed {options.seed}), as PNGs",
        "summary": _refusal_summary(families),
        "families": families,
    }


def _refusal_summary(families: dict[str, Any]) -> dict[str, Any]:
    def share(selected: list[dict[str, Any]]) -> float:
        images = sum(f["images"] for f in selected)
        return round(sum(f["refused"] for f in selected) / images, 6) if images else 0.0

    values = list(families.values())
    return {
        "refused_rate": share(values),
        "refused_rate_training_families": share([f for f in values if not f["held_out"]]),
        "refused_rate_held_out_families": share([f for f in values if f["held_out"]]),
        "images": sum(f["images"] for f in values),
    }


def _adversarial(decision, images, labels, _train, options: _Options) -> dict[str, Any]:
    """Sharded over ``torchrun`` processes and resumable (``digitguard.attacks.sharded``)."""
    from digitguard.attacks.sharded import ShardedRun, run_sharded
    from digitguard.evaluation.served import decision_evaluation, decision_record_schema, decision_summary

    attacks = {name: _build_attack(name, decision, options) for name in options.attacks}
    settings = {
        "model_sha256": options.model_sha256,
        "gate_sha256": options.gate_sha256,
        "abstain_below": decision.abstain_below,
        "eps": options.eps,
        "attacks": [{"attack": name, "settings": dict(a.settings())} for name, a in attacks.items()],
    }
    run = ShardedRun(
        options.shards,
        0,
        options.first,
        options.batch_size,
        decision_record_schema(options.attacks, options.eps),
        settings,
    )

    def progress(step) -> None:
        click.echo(f"  rank {step.rank}: {step.done}/{step.total} images ({step.seconds:.0f} s)", err=True)

    outcome = run_sharded(
        run,
        images,
        labels,
        decision_evaluation(decision, attacks),
        options.cluster,
        resume=options.resume,
        summarise=decision_summary(options.attacks),
        command=["digitguard", *sys.argv[1:]],
        progress=progress,
    )
    if outcome is None:
        return {}
    records = [json.loads(line) for line in outcome.results.read_text().splitlines()]
    return {
        "sample": f"MNIST test images 0–{options.first - 1}",
        "eps": options.eps,
        "norm": "Linf",
        "summary": outcome.summary.get("summary", outcome.summary),
        "attacks": settings["attacks"],
        "results_sha256": outcome.results_sha256,
        "per_image": records,
    }


def _build_attack(name: str, decision, options: _Options):
    from digitguard.attacks.decision_pgd import DecisionTargetedPGD

    if name == "decision-pgd":
        return DecisionTargetedPGD(
            decision,
            options.eps,
            steps=options.steps,
            restarts=options.restarts,
            targets=options.targets,
            seed=options.seed,
        )
    from digitguard.attacks.registry import AttackOptions, attack_for

    return attack_for(name, decision.primary, AttackOptions(seed=options.seed))(options.eps)


_SUITE_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "clean": _clean,
    "drawing": _drawing,
    "junk": _junk,
    "adversarial": _adversarial,
}


@served.command("calibrate")
@click.option("--model", "model_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--gate", "gate_dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option(
    "--max-wrong",
    type=click.FloatRange(0, 1),
    default=0.002,
    show_default=True,
    help="Wrong-answer rate allowed.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@data_dir_option
@trust_option
def calibrate(
    model_dir: Path,
    gate_dir: Path | None,
    max_wrong: float,
    seed: int,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Choose the confidence threshold on the model's own validation digits (never test digits):
    plain and re-drawn in the training styles, through the canvas path."""
    import numpy as np
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import drawing, mnist
    from digitguard.evaluation.served import lowest_threshold_within, threshold_table, through_canvas
    from digitguard.inference.decision import ServedDecision
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import to_model_input
    from digitguard.training.run import recorded_splits

    primary = load_verified(model_dir, list(trust_dirs))
    gate = load_verified(gate_dir, list(trust_dirs)) if gate_dir is not None else None
    splits = recorded_splits(mnist.load(data_dir or default_data_dir()), primary.manifest.training)
    if len(splits.val_labels) == 0:
        raise click.ClickException(f"{model_dir}: its manifest records no validation split to calibrate on")
    digits = to_model_input(splits.val_images)
    drawn = through_canvas(drawing.render(digits, torch.Generator().manual_seed(seed)), seed)
    inputs = torch.cat([digits, drawn.inputs])
    labels = torch.cat([splits.val_labels, splits.val_labels[torch.from_numpy(drawn.kept)]])
    decision = ServedDecision(primary.model.eval(), gate.model.eval() if gate else None, 0.0)
    rows = threshold_table(decision, inputs, labels, [round(t, 2) for t in np.arange(0.3, 0.96, 0.05)])
    click.echo(f"{len(labels)} validation inputs (plain and drawn), model {primary.weights_sha256[:12]}")
    with torch.no_grad():
        top = torch.softmax(primary.model.eval()(inputs), 1).amax(1)
    quartiles = torch.quantile(top, torch.tensor([0.25, 0.5, 0.75])).tolist()
    click.echo("  the model's own top probability, quartiles: " + ", ".join(f"{q:.3f}" for q in quartiles))
    for row in rows:
        click.echo(
            f"  abstain below {row.abstain_below:.2f}: "
            f"correct {row.correct_rate:.4f}  wrong {row.wrong_rate:.4f}"
        )
    chosen = lowest_threshold_within(rows, max_wrong)
    if chosen is None:
        raise click.ClickException(f"no threshold keeps wrong answers at or below {max_wrong}")
    click.echo(f"lowest threshold with at most {max_wrong:.2%} wrong: {chosen.abstain_below:.2f}")
