"""``digitguard attack``: robust accuracy of a verified model under an L∞ attack, per ε.

A click adapter like ``cli.py`` (which registers this command): arguments in, calls of
:mod:`digitguard.attacks` out. Bad settings are :class:`~digitguard.errors.AttackError`s (exit
status 2); an attack that leaves its budget, or a referee that disagrees, is an
:class:`~digitguard.errors.AttackCheckError` (exit status 1) — raised after the results are
printed and written, so the disagreement itself can be inspected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digitguard.cli_options import data_dir_option, trust_option
from digitguard.errors import AttackError

if TYPE_CHECKING:
    from digitguard.attacks.evaluate import AttackRun

DATA_DIR_ENV = "DIGITGUARD_DATA_DIR"


@click.command("attack")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--attack",
    "attack_name",
    required=True,
    metavar="fgsm|pgd|cw|autoattack|autoattack-art|autoattack-reference",
    help="fgsm and pgd are native PyTorch; cw (C&W L∞), autoattack (standard: APGD-CE, APGD-T, "
    "Square) and autoattack-art (ART's default list) run through ART; autoattack-reference is "
    "Croce & Hein's own standard AutoAttack (pyautoattack, with FAB-T).",
)
@click.option(
    "--eps",
    "eps_list",
    default="0.1,0.2,0.3",
    show_default=True,
    help="Comma-separated L∞ budgets in (0, 1] (pixels are in [0, 1]).",
)
@click.option("--steps", type=int, default=None, help="PGD iterations (default 40).")
@click.option("--restarts", type=int, default=None, help="PGD random restarts, worst case kept (default 1).")
@click.option(
    "--random-start/--no-random-start",
    default=True,
    help="PGD starts at a random point of the ε-ball (default) or at the image.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help="Attack the first N test images (default: all 10,000 for fgsm and pgd, 100 for cw and autoattack).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--referee",
    is_flag=True,
    help="Also run ART's FGSM/PGD (PGD from the zero start) on the same images; "
    "exit status 1 if robust accuracies differ by more than 0.3 points.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory for ATTACK-result.json, ATTACK-accuracy.png and ATTACK-examples.png.",
)
@data_dir_option
@trust_option
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Also bisect ε (to 0.001) for the budget at which robust accuracy falls to this value, "
    "e.g. 0.4365 (the seed's FGSM figure).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def attack_command(
    model_dir: Path,
    attack_name: str,
    eps_list: str,
    steps: int | None,
    restarts: int | None,
    random_start: bool,
    samples: int | None,
    seed: int,
    batch_size: int,
    referee: bool,
    out: Path | None,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
    target_accuracy: float | None,
    as_json: bool,
) -> None:
    """Attack the verified MODEL_DIR on MNIST test images: clean and robust accuracy per ε, attack success."""
    import numpy as np
    import torch

    from digitguard.attacks.base import parse_epsilons
    from digitguard.attacks.evaluate import compare_with_referee, evaluate_attack, search_epsilon
    from digitguard.attacks.registry import DEFAULT_SAMPLES, AttackOptions, attack_for, referees_for
    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import to_model_input

    epsilons = parse_epsilons(eps_list)
    options = AttackOptions(
        steps=steps, restarts=restarts, random_start=random_start, seed=seed, batch_size=batch_size
    )
    verified = load_verified(model_dir, list(trust_dirs))
    make_attack = attack_for(attack_name, verified.model, options)  # refuses unknown names and settings
    judges = referees_for(attack_name, verified.model, options) if referee else None

    test = mnist.load(data_dir or default_data_dir()).test
    count = samples or DEFAULT_SAMPLES[attack_name] or len(test.labels)
    if count > len(test.labels):
        raise AttackError(f"--samples {count}: the test set has only {len(test.labels)} images")
    images = to_model_input(torch.from_numpy(test.images[:count].copy()))
    labels = torch.from_numpy(test.labels[:count].astype(np.int64))

    run = evaluate_attack(verified.model, make_attack, images, labels, epsilons, batch_size=batch_size)
    refereed = None
    if judges is not None:
        native_for, art_for = judges
        same_as_main = attack_name == "fgsm" or (not random_start and (restarts or 1) == 1)
        native = run
        if not same_as_main:
            native = evaluate_attack(
                verified.model, native_for, images, labels, epsilons, batch_size=batch_size
            )
        art = evaluate_attack(verified.model, art_for, images, labels, epsilons, batch_size=batch_size)
        refereed = compare_with_referee(native.report, art.report)

    search = None
    if target_accuracy is not None:
        search = search_epsilon(
            verified.model,
            make_attack,
            images,
            labels,
            target_accuracy,
            known=run.report.results,
            batch_size=batch_size,
        )

    result = {
        "model": str(model_dir),
        "model_sha256": verified.weights_sha256,
        "data": f"MNIST test set, first {count} images",
        **run.report.to_dict(),
        "referee": refereed.to_dict() if refereed else None,
        "epsilon_search": search.to_dict() if search else None,
    }
    if out is not None:
        result["files"] = _write_outputs(out, attack_name, result, run, model_dir)
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print_report(result)
    if refereed is not None:
        refereed.check()


def _write_outputs(
    out: Path, attack_name: str, result: dict[str, Any], run: AttackRun, model_dir: Path
) -> dict[str, str]:
    from digitguard.attacks.plots import accuracy_vs_epsilon_png, examples_png
    from digitguard.outputs import json_bytes, write_outputs

    title = f"{model_dir.name} under {attack_name} (L∞)"
    names = {
        "result": f"{attack_name}-result.json",
        "accuracy_plot": f"{attack_name}-accuracy.png",
        "examples_plot": f"{attack_name}-examples.png",
    }
    listed = {key: str(out / name) for key, name in names.items()}
    write_outputs(
        out,
        {
            names["accuracy_plot"]: accuracy_vs_epsilon_png([run.report], title),
            names["examples_plot"]: examples_png(run.examples, title),
            names["result"]: json_bytes({**result, "files": listed}),
        },
    )
    return listed


def _print_report(result: dict[str, Any]) -> None:
    click.echo(f"model {result['model']} (weights sha256 {result['model_sha256']})")
    click.echo(f"attack {result['attack']} ({result['norm']}) {result['settings']} on {result['data']}")
    click.echo(
        f"clean accuracy {result['clean_accuracy']:.4f} ({result['clean_correct']}/{result['samples']})"
    )
    click.echo("     ε   robust acc.   attack success   max |δ|∞   seconds")
    for row in result["results"]:
        click.echo(
            f"{row['eps']:6g}   {row['robust_accuracy']:11.4f}   {row['attack_success_rate']:14.4f}"
            f"   {row['max_perturbation']:8.4f}   {row['seconds']:7.1f}"
        )
    referee = result.get("referee")
    if referee:
        verdict = "agree" if referee["agreed"] else "DISAGREE"
        click.echo(
            f"referee: native and ART {referee['attack']} {verdict} "
            f"(tolerance {referee['tolerance_points']} points)"
        )
        for row in referee["comparisons"]:
            click.echo(
                f"{row['eps']:6g}   native {row['native_robust_accuracy']:.4f}   "
                f"ART {row['art_robust_accuracy']:.4f}   difference {row['difference_points']:.2f} points"
            )
    search = result.get("epsilon_search")
    if search:
        above, below = search["above"], search["at_or_below"]
        click.echo(
            f"robust accuracy {search['target_accuracy']:.4f} is crossed between ε = {above['eps']:g} "
            f"({above['robust_accuracy']:.4f}) and ε = {below['eps']:g} ({below['robust_accuracy']:.4f}); "
            f"{len(search['evaluations'])} extra runs"
        )
    for name, path in result.get("files", {}).items():
        click.echo(f"{name}: {path}")


@click.command("attack-sharded")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--attack", "attack_name", required=True, help="A name from the attack registry.")
@click.option("--eps", type=float, required=True, help="The L∞ budget in (0, 1].")
@click.option("--first", type=click.IntRange(min=1), default=None, help="Test images [0, N).")
@click.option("--start", type=click.IntRange(min=0), default=None, help="Test images [START, STOP) …")
@click.option("--stop", type=click.IntRange(min=1), default=None, help="… instead of --first.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for run.json, shards/, results.jsonl and summary.json.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out, skipping the images recorded.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Images per batch; part of the run (a resumed run keeps it).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the attack's random draws.")
@click.option("--steps", type=int, default=None, help="PGD iterations (default 40).")
@click.option("--restarts", type=int, default=None, help="PGD random restarts (default 1).")
@click.option("--random-start/--no-random-start", default=True, help="PGD's start (default: random).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Torch threads per process; records are byte-identical only between runs with the same count.",
)
@click.option("--quiet", is_flag=True, help="No per-batch progress on stderr.")
@data_dir_option
@trust_option
def attack_sharded_command(
    model_dir: Path,
    attack_name: str,
    eps: float,
    first: int | None,
    start: int | None,
    stop: int | None,
    out: Path,
    resume: bool,
    batch_size: int,
    seed: int,
    steps: int | None,
    restarts: int | None,
    random_start: bool,
    threads: int,
    quiet: bool,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Attack test images of the verified MODEL_DIR image by image, sharded over torchrun's processes.

    Each process evaluates every world-size-th batch and appends one line per image to its own
    shard in OUT; rank 0 merges them into results.jsonl (the same bytes for any number of processes
    or interruptions) and prints robust accuracy with its 95% Wilson interval. Run it as
    `torchrun --nproc_per_node 2 -m digitguard attack-sharded …`, or alone.
    """
    import dataclasses
    import sys

    import numpy as np
    import torch

    from digitguard.attacks.base import check_epsilon
    from digitguard.attacks.registry import AttackOptions, attack_for
    from digitguard.attacks.sharded import (
        ShardedRun,
        attack_evaluation,
        attack_record_schema,
        robust_summary,
        run_sharded,
    )
    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.training import distributed
    from digitguard.training.loop import to_model_input

    begin, end = _sample_range(first, start, stop)
    budget = check_epsilon(eps)
    options = AttackOptions(
        steps=steps, restarts=restarts, random_start=random_start, seed=seed, batch_size=batch_size
    )
    verified = load_verified(model_dir, list(trust_dirs))
    attack = attack_for(attack_name, verified.model, options)(budget)
    data = mnist.load(data_dir or default_data_dir())
    test_files = {name: sha for name, sha in sorted(data.file_sha256.items()) if name.startswith("t10k")}
    settings = {
        "model_sha256": verified.weights_sha256,
        "attack": attack_name,
        "implementation": str(attack.settings().get("implementation", attack.name)),
        "eps": budget,
        "options": dataclasses.asdict(options),
        "data": {"set": "MNIST test", "files_sha256": test_files},
        "torch": torch.__version__,
    }
    run = ShardedRun(out, begin, end, batch_size, attack_record_schema(budget), settings)
    torch.set_num_threads(threads)
    images = to_model_input(torch.from_numpy(data.test.images.copy()))
    labels = torch.from_numpy(data.test.labels.astype(np.int64))

    cluster = distributed.join()
    try:
        outcome = run_sharded(
            run,
            images,
            labels,
            attack_evaluation(verified.model, attack),
            cluster,
            resume=resume,
            summarise=robust_summary,
            command=["digitguard", *sys.argv[1:]],
            progress=None if quiet else _print_progress,
        )
    except BaseException:
        if torch.distributed.is_initialized():  # no barrier: the other ranks may never reach it
            torch.distributed.destroy_process_group()
        raise
    cluster.leave(verified.model)
    if outcome is None:
        return
    summary = outcome.summary["summary"]
    low, high = summary["robust_accuracy_wilson_95"]
    click.echo(f"model {model_dir} (weights sha256 {verified.weights_sha256})")
    click.echo(
        f"{attack_name} at ε = {budget:g} on MNIST test images [{begin}, {end}), "
        f"{cluster.world_size} process(es), batch {batch_size}"
    )
    click.echo(
        f"clean accuracy {summary['clean_accuracy']:.4f} ({summary['clean_correct']}/{summary['images']})"
    )
    robust, images_count = summary["robust_correct"], summary["images"]
    click.echo(
        f"robust accuracy {summary['robust_accuracy']:.4f} ({robust}/{images_count}), "
        f"95% Wilson interval [{low:.4f}, {high:.4f}]"
    )
    click.echo(f"results: {outcome.results} (sha256 {outcome.results_sha256})")
    click.echo(f"summary: {outcome.summary_path}")


def _sample_range(first: int | None, start: int | None, stop: int | None) -> tuple[int, int]:
    if first is not None and (start is not None or stop is not None):
        raise AttackError("give --first N or --start/--stop, not both")
    if first is not None:
        return 0, first
    if stop is None:
        raise AttackError("say which test images: --first N, or --start A --stop B")
    return start or 0, stop


def _print_progress(step: Any) -> None:
    state = "evaluated" if step.evaluated else "already recorded"
    click.echo(
        f"[rank {step.rank}/{step.world_size}] images {step.batch.start}–{step.batch.stop - 1} {state} "
        f"in {step.seconds:.1f} s; {step.done}/{step.total} of this rank's share",
        err=True,
    )
