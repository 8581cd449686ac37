"""``digitguard supply-chain``: build the hash lock, and audit the environment against it and OSV.

A click adapter like ``cli.py`` (which registers this group): it reads the lock, the running
interpreter's distributions and the OSV copy, calls :mod:`digitguard.supplychain`, and writes
``dependencies.json`` — the evidence of the threat model's ``dependency-lock`` control.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import sys
from pathlib import Path

import click

from digitguard.outputs import json_bytes, write_outputs

DEFAULT_LOCK = Path("requirements.lock")
LOCK_HEADER = """digitguard's hash lock: every distribution `make setup` installs, for CPython 3.11 on
Linux x86_64. pip installs it with --require-hashes and refuses any archive not listed here.
Written by `digitguard supply-chain lock --wheels DIR` from the archives `pip download` fetched;
edit pyproject.toml, rebuild the environment, then regenerate — never edit by hand."""


@click.group("supply-chain")
def supply_chain() -> None:
    """The dependency supply chain: the hash lock and the vulnerability audit."""


@supply_chain.command("lock")
@click.option(
    "--wheels",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="Directory of the archives to hash (`pip download --no-deps -d DIR -r <(pip freeze)`).",
)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_LOCK, show_default=True
)
def lock_command(wheels: Path, out: Path) -> None:
    """Pin every distribution of the running environment, with the SHA-256 of its archives."""
    from digitguard.supplychain.environment import archive_hashes, installed_distributions, lock_packages
    from digitguard.supplychain.lock import format_lock

    packages = lock_packages(installed_distributions(), archive_hashes(wheels))
    write_outputs(out.parent, {out.name: format_lock(packages, LOCK_HEADER)})
    click.echo(f"{out}: {len(packages)} distributions pinned")


@supply_chain.command("audit")
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=DEFAULT_LOCK,
    show_default=True,
)
@click.option(
    "--osv",
    "osv_path",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="OSV's PyPI advisories: the all.zip from osv-vulnerabilities.storage.googleapis.com/PyPI/ "
    "or a directory of its JSON records. Without it the audit reports 'not checked'.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory for dependencies.json (the threat model reads reports/supply-chain/).",
)
@click.option(
    "--exit-zero",
    is_flag=True,
    help="Exit 0 even with findings (the threat check judges them); default: exit status 1.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def audit_command(
    lock_path: Path, osv_path: Path | None, out: Path | None, exit_zero: bool, as_json: bool
) -> None:
    """Compare the running environment with the lock and with known vulnerabilities."""
    from digitguard.errors import LockFileError
    from digitguard.supplychain.advisories import load_database
    from digitguard.supplychain.audit import audit
    from digitguard.supplychain.environment import installed_distributions
    from digitguard.supplychain.lock import parse_lock

    lock_bytes = lock_path.read_bytes()
    try:
        lock_text = lock_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise LockFileError(f"{lock_path}: not UTF-8 text") from None
    lock = parse_lock(lock_text)
    lock_sha256 = hashlib.sha256(lock_bytes).hexdigest()
    database = load_database(osv_path) if osv_path is not None else None
    now = dt.datetime.now(dt.UTC)
    result = audit(installed_distributions(), lock, database, now=now)
    document = {
        "kind": "supply-chain-audit",
        **result.to_dict(),
        "lock": {"path": str(lock_path), "sha256": lock_sha256},
        "sources": {lock_path.as_posix(): lock_sha256},
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "created_at": now.isoformat(timespec="seconds"),
    }
    if out is not None:
        write_outputs(out, {"dependencies.json": json_bytes(document)})
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(f"{len(result.installed)} distributions installed, {len(lock.packages)} locked")
        for finding in result.findings:
            click.echo(f"  {finding.rule}: {finding.detail}")
        click.echo(f"{len(result.findings)} finding(s)")
    if result.findings and not exit_zero:
        sys.exit(1)
