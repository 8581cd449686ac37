from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from xml.sax.saxutils import quoteattr

from digitguard.threatmodel.junit import SOURCES_PROPERTY, fingerprint, junit_address


def write_junit(
    path: Path,
    outcomes: Mapping[str, str],
    sources: Mapping[str, str] | None,
    timestamp: str = "2026-11-23T08:00:00+00:00",
) -> Path:
    """A JUnit report as pytest writes it: one case per node id, with the given outcome."""
    cases = []
    for node, outcome in outcomes.items():
        base, bracket, params = node.partition("[")
        classname, _, name = junit_address(base).rpartition(".")
        name += bracket + params
        inner = {
            "failed": '<failure message="boom">trace</failure>',
            "error": '<error message="bad"/>',
            "skipped": '<skipped type="pytest.skip" message="no data"/>',
            "passed": "",
        }[outcome]
        cases.append(
            f'<testcase classname={quoteattr(classname)} name={quoteattr(name)} time="0.1">{inner}</testcase>'
        )
    properties = ""
    if sources is not None:
        value = quoteattr(json.dumps(dict(sources)))
        properties = f'<properties><property name="{SOURCES_PROPERTY}" value={value} /></properties>'
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" timestamp="{timestamp}">{properties}{"".join(cases)}'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    return path


def hashes(root: Path, files: Iterable[str]) -> dict[str, str]:
    return {f: fingerprint(root / f) for f in files if (root / f).is_file()}
