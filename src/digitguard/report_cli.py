"""``digitguard report``: measured reports as Markdown + JSON + PNGs (a click adapter).

``report robustness`` measures the given verified models now — clean accuracy, FGSM, PGD,
AutoAttack, calibration, coverage — and includes detector evaluations made earlier by
``digitguard detector evaluate --out`` when their model hashes match. The exact command line
goes into the report so that anyone can re-run it.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from digitguard.cli_options import data_dir_option, trust_option
from digitguard.outputs import json_bytes, write_outputs


@click.group("report")
def report() -> None:
    """Write measured reports (Markdown, JSON, PNG)."""


@report.command("robustness")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option(
    "--model",
    "model_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Model directory to report on (repeatable; default models/basic).",
)
@click.option(
    "--ensemble-member",
    "member_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="With the first --model, a deep ensemble whose calibration and coverage are reported (repeatable).",
)
@click.option(
    "--detector-results",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="detector-result.json of `digitguard detector evaluate` for one of the models (repeatable).",
)
@click.option(
    "--autoattack-results",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="autoattack-result.json of `digitguard attack --attack autoattack` for one of the models, "
    "used instead of measuring AutoAttack on it (repeatable).",
)
@click.option("--eps", "eps_list", default="0.1,0.2,0.3", show_default=True)
@click.option(
    "--samples", type=click.IntRange(min=1), default=1000, show_default=True, help="FGSM/PGD images."
)
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True, help="PGD steps.")
@click.option("--restarts", type=click.IntRange(min=1), default=1, show_default=True, help="PGD restarts.")
@click.option("--autoattack-samples", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@trust_option
@data_dir_option
def robustness_command(
    out: Path,
    model_dirs: tuple[Path, ...],
    member_dirs: tuple[Path, ...],
    detector_results: tuple[Path, ...],
    autoattack_results: tuple[Path, ...],
    eps_list: str,
    samples: int,
    steps: int,
    restarts: int,
    autoattack_samples: int,
    seed: int,
    trust_dirs: tuple[Path, ...],
    data_dir: Path | None,
) -> None:
    """Measure and write OUT/robustness.md, robustness.json and the plots."""
    import numpy as np
    import torch

    from digitguard.attacks.base import parse_epsilons
    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.reports.robustness import Settings, measure, plots, to_markdown
    from digitguard.training.loop import to_model_input

    trust = list(trust_dirs)
    models = [load_verified(path, trust) for path in (model_dirs or (Path("models/basic"),))]
    members = [load_verified(path, trust) for path in member_dirs]
    detectors = [json.loads(path.read_text(encoding="utf-8")) for path in detector_results]
    autoattacks = [json.loads(path.read_text(encoding="utf-8")) for path in autoattack_results]
    test = mnist.load(data_dir or default_data_dir()).test
    images = to_model_input(torch.from_numpy(test.images.copy()))
    labels = torch.from_numpy(test.labels.astype(np.int64))
    settings = Settings(
        epsilons=parse_epsilons(eps_list),
        samples=samples,
        pgd_steps=steps,
        pgd_restarts=restarts,
        autoattack_samples=autoattack_samples,
        seed=seed,
    )
    measured = measure(models, images, labels, settings, members, detectors, autoattacks)
    command = _command(click.get_current_context())
    measured["command"] = command
    files = {"robustness.json": json_bytes(measured), **plots(measured)}
    files["robustness.md"] = to_markdown(measured, command).encode()
    write_outputs(out, files)
    click.echo(f"wrote {', '.join(sorted(files))} to {out}")


@report.command("poisoning")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option(
    "--work",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("instance/poison-experiment"),
    show_default=True,
    help="Where `make poison-experiment` left its results.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The served model, whose own backdoor check is measured now (default: the served default).",
)
@trust_option
@data_dir_option
def poisoning_command(
    out: Path, work: Path, model_dir: Path | None, trust_dirs: tuple[Path, ...], data_dir: Path | None
) -> None:
    """Write OUT/poisoning.md, poisoning.json, the plot and the evidence files the threat model reads."""
    from digitguard.web import default_model_dir

    model_dir = model_dir or Path("models") / default_model_dir().name
    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.poisoning.backdoor import evaluate_backdoor
    from digitguard.poisoning.triggers import get_trigger
    from digitguard.reports.poisoning import (
        PoisoningReportError,
        checks,
        collect,
        evidence_files,
        plots,
        to_markdown,
    )

    try:
        results = collect(work)
    except PoisoningReportError as exc:
        raise click.ClickException(str(exc)) from exc
    verified = load_verified(model_dir, list(trust_dirs))
    test = mnist.load(data_dir or default_data_dir()).test
    served = evaluate_backdoor(verified.model, test.images, test.labels, get_trigger("square3"), 7)
    results["served"] = {"model": str(model_dir), "model_sha256": verified.weights_sha256, **served.to_dict()}
    command = _command(click.get_current_context())
    report = {"work": str(work), "command": command, **results, "checks": checks(results)}
    files = {name: json_bytes(doc) for name, doc in evidence_files(report).items()}
    files |= {"poisoning.json": json_bytes(report), **plots(report)}
    files["poisoning.md"] = to_markdown(report, command).encode()
    write_outputs(out, files)
    met = sum(check["met"] for check in report["checks"])
    click.echo(f"wrote {len(files)} files to {out}; {met} of {len(report['checks'])} targets met")


@report.command("privacy")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option(
    "--model",
    "model_dirs",
    type=click.Path(path_type=Path),
    multiple=True,
    default=(Path("models/basic"), Path("models/private")),
    show_default=True,
    help="Models to report on (repeatable); their audits are read from AUDITS/<directory name>/.",
)
@click.option(
    "--audits",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("docs/privacy-audit"),
    show_default=True,
    help="Where `privacy audit --out` and `privacy lira --out` wrote their results.",
)
@click.option(
    "--extraction",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("docs/extraction"),
    show_default=True,
    help="Where `redteam extract --out` wrote its results.",
)
@trust_option
def privacy_command(
    out: Path, model_dirs: tuple[Path, ...], audits: Path, extraction: Path, trust_dirs: tuple[Path, ...]
) -> None:
    """Write OUT/privacy.md, privacy.json and privacy.png from the measured privacy results."""
    from digitguard.models.artifact import load_verified
    from digitguard.reports.privacy import (
        checks,
        extraction_entries,
        model_entry,
        plots,
        replay_entries,
        to_markdown,
    )

    models = []
    for model_dir in model_dirs:
        verified = load_verified(model_dir, list(trust_dirs))
        models.append(model_entry(model_dir.name, verified.weights_sha256, verified.manifest, audits))
    command = _command(click.get_current_context())
    report: dict = {
        "command": command,
        "models": models,
        "extraction": extraction_entries(extraction),
        "replay": replay_entries(extraction),
    }
    report["checks"] = checks(report)
    files = {
        "privacy.json": json_bytes(report),
        **plots(report),
        "privacy.md": to_markdown(report, command).encode(),
    }
    write_outputs(out, files)
    met = sum(check["met"] for check in report["checks"])
    click.echo(f"wrote {', '.join(sorted(files))} to {out}; {met} of {len(report['checks'])} targets met")


def _command(context: click.Context) -> str:
    """The command line, rebuilt from the parsed options (the same whether typed or called from Python)."""
    parts = ["digitguard", "report", str(context.info_name)]
    for param in context.command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        value = context.params[param.name]
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None:
                parts += [param.opts[0], str(item)]
    return shlex.join(parts)
