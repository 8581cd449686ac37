"""What the last test run said: a JUnit XML report, and the fingerprints of the code it ran on.

``make pytest`` writes ``reports/junit.xml``; ``tests/conftest.py`` records, as the test suite's
property ``digitguard.sources``, the SHA-256 of every file under ``src/`` and ``tests/`` as they
were when the run started. A test's result is then *stale* as soon as one of the files it covers
hashes differently today — whatever the files' modification times say.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import xml.etree.ElementTree as ET  # nosec B405
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from digitguard.threatmodel.model import ThreatModelError

SOURCES_PROPERTY = "digitguard.sources"
FINGERPRINTED = ("src", "tests")
SUFFIXES = frozenset({".py", ".html", ".js", ".css", ".json", ".toml"})


@dataclass(frozen=True)
class Case:
    outcome: str  # "passed", "failed", "error", "skipped"
    message: str = ""


@dataclass(frozen=True)
class JunitReport:
    path: str
    timestamp: dt.datetime | None
    cases: Mapping[tuple[str, str], Case]  # (classname, name) → outcome
    sources: Mapping[str, str] | None  # path → SHA-256 when the run started, if recorded

    def cases_for(self, node_id: str) -> list[tuple[str, Case]]:
        """The cases of a pytest node id: a test and its parametrisations, or every test of a class."""
        address = junit_address(node_id)
        found = []
        for (case_class, case_name), case in self.cases.items():
            full = f"{case_class}.{case_name.partition('[')[0]}"
            if full == address or full.startswith(address + "."):
                found.append((f"{case_class}.{case_name}", case))
        return found


def junit_address(node_id: str) -> str:
    """``tests/web/test_x.py::TestA::test_b`` → ``tests.web.test_x.TestA.test_b``, as pytest's JUnit
    ``classname`` + ``name`` spell it."""
    path, _, rest = node_id.partition("::")
    if not path.endswith(".py") or "[" in node_id:
        raise ThreatModelError(f"{node_id!r} is not a pytest node id (tests/…/test_x.py[::Class][::test])")
    return ".".join([path.removesuffix(".py").replace("/", "."), *filter(None, rest.split("::"))])


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint_tree(root: Path, tops: Iterable[str] = FINGERPRINTED) -> dict[str, str]:
    """SHA-256 of every source-like file under ``root/top`` for each top, by POSIX relative path."""
    found: dict[str, str] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                found[path.relative_to(root).as_posix()] = fingerprint(path)
    return found


def parse_report(path: Path) -> JunitReport:
    """Read a JUnit XML report written by pytest; a malformed one is refused, never half-read."""
    data = path.read_bytes()
    # Our own CI output, but parsed defensively: no DTD means no entities to expand or resolve.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ThreatModelError(f"{path}: a JUnit report must not contain a DTD")
    try:
        root = ET.fromstring(data)  # noqa: S314  # nosec B314
    except ET.ParseError as exc:
        raise ThreatModelError(f"{path}: not well-formed XML ({exc})") from exc
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.tag not in ("testsuite", "testsuites") or not suites:
        raise ThreatModelError(f"{path}: not a JUnit report (no <testsuite>)")
    cases: dict[tuple[str, str], Case] = {}
    sources: dict[str, str] | None = None
    for suite in suites:
        for prop in suite.iterfind("properties/property"):
            if prop.get("name") == SOURCES_PROPERTY:
                sources = _sources(path, prop.get("value", ""))
        for case in suite.iter("testcase"):
            cases[(case.get("classname", ""), case.get("name", ""))] = _case(case)
    return JunitReport(str(path), _timestamp(suites[0].get("timestamp")), cases, sources)


def _case(element: ET.Element) -> Case:
    for outcome in ("failure", "error", "skipped"):
        found = element.find(outcome)
        if found is not None:
            return Case({"failure": "failed"}.get(outcome, outcome), found.get("message", "")[:200])
    return Case("passed")


def _sources(path: Path, value: str) -> dict[str, str]:
    try:
        sources = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ThreatModelError(f"{path}: property {SOURCES_PROPERTY} is not JSON") from exc
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise ThreatModelError(f"{path}: property {SOURCES_PROPERTY} must map paths to hashes")
    return sources


def _timestamp(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
