"""The supply-chain audit: the environment against its hash lock and against known vulnerabilities.

Pure: it takes what is installed, the lock and (maybe) an advisory database, and returns the
findings; reading the environment and writing the report are the CLI's business. Every rule fails
closed — no vulnerability data, or data too old, is itself a finding, so a clean report always
means "checked and found nothing", never "could not check".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from packaging.version import InvalidVersion, Version

from digitguard.supplychain.advisories import AdvisoryDatabase
from digitguard.supplychain.lock import Lock, normalise

MAX_DATA_AGE = dt.timedelta(days=7)  # advisories published after the copy was taken are not seen


@dataclass(frozen=True)
class Finding:
    rule: str  # unlocked | version-mismatch | unhashed | not-installed | vulnerable | vulnerability-data
    package: str | None
    detail: str


@dataclass(frozen=True)
class AuditResult:
    installed: Mapping[str, str]  # normalised name → version
    findings: tuple[Finding, ...]
    vulnerability_data: Mapping[str, object]

    def to_dict(self) -> dict[str, object]:
        return {
            "findings": len(self.findings),
            "problems": [asdict(f) for f in self.findings],
            "packages": [{"name": n, "version": v} for n, v in sorted(self.installed.items())],
            "vulnerability_data": dict(self.vulnerability_data),
        }


def audit(
    installed: Mapping[str, str],
    lock: Lock,
    database: AdvisoryDatabase | None,
    *,
    now: dt.datetime,
    max_data_age: dt.timedelta = MAX_DATA_AGE,
) -> AuditResult:
    """Every way ``installed`` (name → version) departs from ``lock`` or matches an advisory."""
    present = {normalise(name): version for name, version in installed.items()}
    findings = [*_against_lock(present, lock), *_against_advisories(present, database, now, max_data_age)]
    return AuditResult(present, tuple(findings), _describe(database))


def _against_lock(present: Mapping[str, str], lock: Lock) -> list[Finding]:
    findings = []
    for name, version in sorted(present.items()):
        locked = lock.get(name)
        if locked is None:
            findings.append(Finding("unlocked", name, f"{name} {version} is installed but not in the lock"))
        elif locked.version != version:
            findings.append(
                Finding("version-mismatch", name, f"installed {version}, the lock pins {locked.version}")
            )
        elif not locked.hashes:
            findings.append(Finding("unhashed", name, f"the lock pins {version} without a --hash"))
    for locked in lock.packages:
        if locked.name not in present:
            findings.append(
                Finding("not-installed", locked.name, f"the lock pins {locked.version}; it is not installed")
            )
    return findings


def _against_advisories(
    present: Mapping[str, str],
    database: AdvisoryDatabase | None,
    now: dt.datetime,
    max_data_age: dt.timedelta,
) -> list[Finding]:
    if database is None:
        return [Finding("vulnerability-data", None, "no vulnerability database given (--osv): not checked")]
    findings = []
    if database.newest_modified is None or now - database.newest_modified > max_data_age:
        newest = database.newest_modified.isoformat() if database.newest_modified else "unknown"
        findings.append(
            Finding(
                "vulnerability-data",
                None,
                f"{database.source}: newest record modified {newest}, older than {max_data_age.days} days",
            )
        )
    for name, version in sorted(present.items()):
        try:
            Version(version)
        except InvalidVersion:
            detail = f"version {version!r} cannot be compared with advisories"
            findings.append(Finding("vulnerable", name, detail))
            continue
        for advisory in database.affecting(name, version):
            fixed = f"; fixed in {', '.join(advisory.fixed)}" if advisory.fixed else "; no fixed version"
            detail = f"{version}: {advisory.id} {advisory.summary}{fixed}"
            findings.append(Finding("vulnerable", name, detail))
    return findings


def _describe(database: AdvisoryDatabase | None) -> dict[str, object]:
    if database is None:
        return {"source": None}
    newest = database.newest_modified.isoformat() if database.newest_modified else None
    return {"source": database.source, "records": database.records, "newest_modified": newest}
