"""``digitguard review``: the human review queue from the command line (list, export for retraining).

A click adapter like ``cli.py`` (which registers this group): arguments in, calls of
:mod:`digitguard.review` out; refusals are :class:`~digitguard.errors.DigitguardError`s that
``cli.main`` turns into ``error: …`` and exit status 2.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click

STATUS_CHOICES = ("pending", "labelled", "not_a_digit", "all")

db_option = click.option(
    "--db",
    "database_url",
    default=None,
    help="Database URL (default: $DIGITGUARD_DATABASE_URL or sqlite in the instance directory).",
)


def _store(database_url: str | None):
    from digitguard.paths import default_database_url
    from digitguard.review.store import ReviewStore
    from digitguard.security.store import connect

    return ReviewStore(connect(database_url or default_database_url()))


@click.group()
def review() -> None:
    """The human review queue: abstained and flagged predictions, and their true labels."""


@review.command("export")
@db_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to create (must not exist, or be empty).",
)
@click.option(
    "--include-flagged-unreviewed",
    type=click.BOOL,
    default=False,
    show_default=True,
    metavar="yes|no",
    help="Also export flagged samples nobody reviewed yet, labelled with the flagging user's "
    "unverified suggestion (marked label_source=user in the manifest).",
)
def review_export(database_url: str | None, out: Path, include_flagged_unreviewed: bool) -> None:
    """Write reviewed samples as IDX files (MNIST's train-* names) plus manifest.json, atomically."""
    from digitguard.cli import _audit_cli_event
    from digitguard.review.export import MANIFEST_FILE, export_dataset
    from digitguard.review.store import now_iso

    store = _store(database_url)
    items = store.exportable(include_flagged_unreviewed=include_flagged_unreviewed)
    result = export_dataset(
        items, out, exported_at=now_iso(), include_flagged_unreviewed=include_flagged_unreviewed
    )
    manifest = result.manifest
    _audit_cli_event(
        database_url,
        "review.exported",
        {
            "out": str(out),
            "count": result.count,
            "include_flagged_unreviewed": include_flagged_unreviewed,
            "manifest_sha256": hashlib.sha256((out / MANIFEST_FILE).read_bytes()).hexdigest(),
            "files": {name: entry["sha256"] for name, entry in manifest["files"].items()},
        },
    )
    counts = " ".join(f"{digit}:{n}" for digit, n in manifest["label_counts"].items())
    click.echo(f"exported {result.count} samples to {out} (labels {counts})")
    for name, entry in manifest["files"].items():
        click.echo(f"  {entry['sha256']}  {name}")


@review.command("list")
@db_option
@click.option("--status", type=click.Choice(STATUS_CHOICES), default="pending", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def review_list(database_url: str | None, status: str, limit: int, as_json: bool) -> None:
    """List review items, newest first."""
    from digitguard.review.queue import Status

    items = _store(database_url).items(None if status == "all" else Status(status), limit=limit)
    for item in items:
        sample, decision = item.sample, item.decision
        if as_json:
            entry = {
                "id": item.id,
                "request_id": sample.request_id,
                "created_at": item.created_at,
                "reason": sample.reason.value,
                "abstention_reason": sample.abstention_code,
                "status": item.status.value,
                "digit": sample.digit,
                "confidence": sample.confidence,
                "suggested_label": sample.suggested_label,
                "label": decision.verdict if decision else None,
                "reviewer": decision.reviewer if decision else None,
            }
            click.echo(json.dumps(entry))
            continue
        answer = "not sure" if sample.digit is None else str(sample.digit)
        verdict = "—" if decision is None else f"{decision.verdict} by {decision.reviewer}"
        click.echo(
            f"{item.id:>6}  {item.created_at[:19]}  {sample.reason.value:<9}  model {answer:<8}  "
            f"{sample.confidence:6.1%}  {item.status.value:<11}  {verdict}"
        )
