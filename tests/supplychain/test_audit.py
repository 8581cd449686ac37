"""The audit: every departure from the lock and every known vulnerability is a finding; so is not knowing."""

from __future__ import annotations

import datetime as dt

from digitguard.supplychain.audit import MAX_DATA_AGE, audit
from digitguard.supplychain.lock import Lock, LockedPackage
from tests.supplychain.test_advisories import database, record

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
DIGEST = "c" * 64
LOCK = Lock(
    (
        LockedPackage("flask", "3.1.0", (DIGEST,)),
        LockedPackage("jinja2", "3.1.2", (DIGEST,)),
        LockedPackage("click", "8.1.7", ()),
    )
)
CLEAN = database(record(package="unrelated", versions=["1.0"]))


def rules(result) -> list[tuple[str, str | None]]:
    return [(f.rule, f.package) for f in result.findings]


def test_an_environment_that_matches_the_lock_with_current_clean_data_has_no_findings() -> None:
    lock = Lock(LOCK.packages[:2])
    result = audit({"Flask": "3.1.0", "Jinja2": "3.1.2"}, lock, CLEAN, now=NOW)
    assert result.findings == ()
    assert result.to_dict()["findings"] == 0
    assert result.to_dict()["packages"] == [
        {"name": "flask", "version": "3.1.0"},
        {"name": "jinja2", "version": "3.1.2"},
    ]


def test_departures_from_the_lock_are_findings() -> None:
    installed = {"flask": "3.1.1", "click": "8.1.7", "requests": "2.32.0"}
    assert rules(audit(installed, LOCK, CLEAN, now=NOW)) == [
        ("unhashed", "click"),
        ("version-mismatch", "flask"),
        ("unlocked", "requests"),
        ("not-installed", "jinja2"),
    ]


def test_a_known_vulnerability_is_a_finding_that_names_the_advisory_and_the_fix() -> None:
    db = database(record(ident="GHSA-jinja", ranges=[[{"introduced": "0"}, {"fixed": "3.1.3"}]]))
    result = audit({"flask": "3.1.0", "jinja2": "3.1.2"}, Lock(LOCK.packages[:2]), db, now=NOW)
    assert rules(result) == [("vulnerable", "jinja2")]
    assert "GHSA-jinja" in result.findings[0].detail and "fixed in 3.1.3" in result.findings[0].detail


def test_without_vulnerability_data_the_audit_fails_closed() -> None:
    result = audit({"flask": "3.1.0", "jinja2": "3.1.2"}, Lock(LOCK.packages[:2]), None, now=NOW)
    assert rules(result) == [("vulnerability-data", None)]
    assert result.to_dict()["vulnerability_data"] == {"source": None}


def test_vulnerability_data_older_than_the_limit_is_a_finding() -> None:
    later = NOW + MAX_DATA_AGE + dt.timedelta(days=1)
    result = audit({"flask": "3.1.0", "jinja2": "3.1.2"}, Lock(LOCK.packages[:2]), CLEAN, now=later)
    assert rules(result) == [("vulnerability-data", None)]
    assert "older than 7 days" in result.findings[0].detail


def test_a_version_that_cannot_be_compared_is_a_finding() -> None:
    lock = Lock((LockedPackage("odd", "not-a-version", (DIGEST,)),))
    assert rules(audit({"odd": "not-a-version"}, lock, CLEAN, now=NOW)) == [("vulnerable", "odd")]
