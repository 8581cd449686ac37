"""``digitguard threats``: the threat model's report, its check for CI, and its baseline.

A click adapter like ``cli.py`` (which registers this group): the configuration is read as
``create_app`` reads it (defaults → ``--config``/``DIGITGUARD_CONFIG`` JSON → ``DIGITGUARD_*``
environment), the configured model is verified to learn the SHA-256 that would be served, and
:mod:`digitguard.threatmodel` does the rest.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

junit_option = click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="JUnit XML report of the last test run (default: reports/junit.xml, written by `make pytest`).",
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The app's JSON configuration file (default: $DIGITGUARD_CONFIG, else the defaults).",
)
model_option = click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory that is served (default: the configuration's MODEL_DIR, else models/basic).",
)


@click.group()
def threats() -> None:
    """The STRIDE threat model, with status computed from tests, measurements and configuration."""


def _config(config_file: Path | None) -> tuple[dict[str, Any], str]:
    from flask import Config

    from digitguard.web import DEFAULTS
    from digitguard.web.limits import LIMIT_DEFAULTS

    config = Config(os.getcwd(), {**DEFAULTS, **LIMIT_DEFAULTS})
    source = "defaults"
    chosen = config_file or (
        Path(os.environ["DIGITGUARD_CONFIG"]) if os.environ.get("DIGITGUARD_CONFIG") else None
    )
    if chosen is not None:
        config.from_file(str(chosen), load=json.load)
        source = f"defaults + {chosen}"
    config.from_prefixed_env("DIGITGUARD")
    if any(name.startswith("DIGITGUARD_") for name in os.environ):
        source += " + DIGITGUARD_* environment"
    return dict(config), source


def _report(config_file: Path | None, junit_path: Path | None, model_dir: Path | None):
    from digitguard.models.artifact import load_verified
    from digitguard.threatmodel.report import evaluate
    from digitguard.web import default_model_dir

    config, source = _config(config_file)
    trust = config.get("TRUST_DIRS") or []
    trust_dirs = [Path(p) for p in (trust.split(os.pathsep) if isinstance(trust, str) else trust) if p]
    verified = load_verified(model_dir or Path(config.get("MODEL_DIR") or default_model_dir()), trust_dirs)
    return evaluate(
        config=config,
        model_sha256=verified.weights_sha256,
        model_name=verified.manifest.name,
        config_source=source,
        junit_path=junit_path,
    )


@threats.command("report")
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Directory to write."
)
@config_option
@junit_option
@model_option
def report_command(
    out: Path, config_file: Path | None, junit_path: Path | None, model_dir: Path | None
) -> None:
    """Write threat-model.md (Mermaid diagram) and threat-model.html (SVG diagram) into OUT."""
    from digitguard.outputs import write_outputs
    from digitguard.threatmodel.report import summary_line, to_html, to_markdown

    report = _report(config_file, junit_path, model_dir)
    files = {"threat-model.md": to_markdown(report), "threat-model.html": to_html(report)}
    write_outputs(out, files)
    for name in files:
        click.echo(f"wrote {out / name}")
    click.echo(summary_line(report.assessment))


@threats.command("check")
@config_option
@junit_option
@model_option
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Fail only on regressions against this recorded baseline (docs/threat-baseline.json).",
)
def check_command(
    config_file: Path | None, junit_path: Path | None, model_dir: Path | None, baseline: Path | None
) -> None:
    """Exit 1 when a threat above low residual risk lacks passing evidence (with --baseline: regressed)."""
    from digitguard.threatmodel import baseline as baselines
    from digitguard.threatmodel.report import summary_line

    assessment = _report(config_file, junit_path, model_dir).assessment
    click.echo(summary_line(assessment))
    for gap in assessment.gaps():
        missing = ", ".join(c.control.id for c in gap.controls if not c.effective) or "no control"
        click.echo(
            f"gap {gap.threat.id} ({gap.status.value}, residual {gap.residual.label}): needs {missing}"
        )
    if baseline is None:
        sys.exit(1 if assessment.gaps() else 0)
    found = baselines.regressions(assessment, baselines.load(baseline))
    for regression in found:
        click.echo(f"REGRESSION {regression}", err=True)
    if found:
        sys.exit(1)
    click.echo(f"no regression against {baseline} (strict mode: run without --baseline)")


@threats.command("baseline")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@config_option
@junit_option
@model_option
def baseline_command(
    out: Path, config_file: Path | None, junit_path: Path | None, model_dir: Path | None
) -> None:
    """Record today's assessment as the baseline `check --baseline` compares against."""
    from digitguard.threatmodel.baseline import snapshot
    from digitguard.threatmodel.report import summary_line

    assessment = _report(config_file, junit_path, model_dir).assessment
    out.write_text(json.dumps(snapshot(assessment), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    click.echo(f"wrote {out}: {summary_line(assessment)}")


@threats.command("tests")
def tests_command() -> None:
    """Print every pytest node id the model's evidence names (e.g. to run just those)."""
    from digitguard.threatmodel.catalog import MODEL
    from digitguard.threatmodel.evidence import TestEvidence
    from digitguard.threatmodel.report import correction_evidence

    nodes = dict.fromkeys(
        n
        for e in [*(e for c in MODEL.controls for e in c.evidence), *correction_evidence()]
        if isinstance(e, TestEvidence)
        for n in e.nodes
    )
    for node in nodes:
        click.echo(node)
