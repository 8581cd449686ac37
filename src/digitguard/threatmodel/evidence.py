"""Evidence: what shows that a control works, and the verdict on it.

Three kinds, each naming something that can be checked rather than claimed:

- :class:`TestEvidence` — pytest node ids that must have *passed* in the last JUnit report,
  and the source files they cover (a change to one of them since the run makes it stale);
- :class:`ResultEvidence` — a number in a JSON result file (robustness, poisoning, privacy…)
  with a pass condition, measured on the model that is served (another model hash: stale);
- :class:`ConfigEvidence` — a predicate over the running app's configuration.

:func:`gather` does the reading (report, result files, source hashes) once; :func:`judge` is a
pure function of one piece of evidence and those :class:`Observations`. A check that cannot be
evaluated — an unreadable file, a metric path that leads nowhere, a value of the wrong type —
is never *passing*: it is missing or failing, and says why.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitguard.threatmodel.junit import JunitReport, fingerprint, parse_report
from digitguard.threatmodel.model import ThreatModel, ThreatModelError


class State(enum.Enum):
    PASSING = "passing"
    FAILING = "failing"
    STALE = "stale"
    MISSING = "missing"


@dataclass(frozen=True)
class Verdict:
    state: State
    detail: str
    measured: str | None = None  # the measured value, when there is one


@dataclass(frozen=True)
class TestEvidence:
    __test__ = False  # not a pytest class, despite the name

    nodes: tuple[str, ...]
    covers: tuple[str, ...] = ()  # source files beyond the tests' own files

    @property
    def key(self) -> str:
        return "test:" + ",".join(self.nodes)

    @property
    def title(self) -> str:
        return ", ".join(self.nodes)

    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*(n.partition("::")[0] for n in self.nodes), *self.covers]))


OPERATORS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "="}


@dataclass(frozen=True)
class Condition:
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ThreatModelError(f"unknown comparison {self.op!r}")

    def holds(self, measured: float) -> bool:
        comparisons = {
            ">=": measured >= self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            "<": measured < self.value,
            "==": measured == self.value,
        }
        return comparisons[self.op]

    def __str__(self) -> str:
        return f"{OPERATORS[self.op]} {self.value:g}"


@dataclass(frozen=True)
class ResultEvidence:
    title: str
    files: tuple[str, ...]  # glob patterns relative to the evidence root
    metric: str  # path into the JSON document, e.g. "results[eps=0.3].robust_accuracy"
    condition: Condition
    match: Mapping[str, object] = field(default_factory=dict)  # top-level fields a file must have
    bound_to_model: bool = True  # measured on the served model (model_sha256 must match)
    # Files the result was measured against: its "sources" must record their SHA-256 as they are now.
    bound_to_sources: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"result:{'|'.join(self.files)}#{self.metric}"


@dataclass(frozen=True)
class ConfigEvidence:
    title: str
    setting: str  # the configuration key, e.g. "RATELIMIT_ENABLED"
    check: str  # one of CONFIG_CHECKS
    expected: object = None
    default: object = None  # the value an absent key has (e.g. Flask-Limiter's RATELIMIT_ENABLED)

    def __post_init__(self) -> None:
        if self.check not in CONFIG_CHECKS:
            raise ThreatModelError(f"unknown configuration check {self.check!r}")

    @property
    def key(self) -> str:
        return f"config:{self.setting}:{self.check}:{self.expected}"


Evidence = TestEvidence | ResultEvidence | ConfigEvidence


def evidence_key(evidence: Evidence) -> str:
    return evidence.key


@dataclass(frozen=True)
class ResultFile:
    path: str
    document: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Observations:
    """Everything the verdicts depend on, read once."""

    config: Mapping[str, Any]
    model_sha256: str | None
    junit: JunitReport | None
    junit_problem: str | None
    sources: Mapping[str, str | None]  # covered path → SHA-256 now (None: the file is gone)
    results: Mapping[str, tuple[ResultFile, ...]]  # glob → matching files
    now: dt.datetime


def gather(
    evidence: Iterable[Evidence],
    *,
    root: Path,
    config: Mapping[str, Any],
    model_sha256: str | None,
    junit_path: Path | None,
    now: dt.datetime | None = None,
) -> Observations:
    """Read the JUnit report, the result files and the covered sources that ``evidence`` names."""
    all_evidence = list(evidence)
    junit, problem = None, None
    if junit_path is None:
        problem = "no JUnit report given"
    elif not junit_path.is_file():
        problem = f"no JUnit report at {junit_path} (run `make pytest`)"
    else:
        junit = parse_report(junit_path)
    covered = {f for e in all_evidence if isinstance(e, TestEvidence) for f in e.files()}
    covered |= {f for e in all_evidence if isinstance(e, ResultEvidence) for f in e.bound_to_sources}
    sources = {f: fingerprint(root / f) if (root / f).is_file() else None for f in sorted(covered)}
    globs = {g for e in all_evidence if isinstance(e, ResultEvidence) for g in e.files}
    results = {g: tuple(_read_result(root, p) for p in sorted(root.glob(g)) if p.is_file()) for g in globs}
    return Observations(
        dict(config), model_sha256, junit, problem, sources, results, now or dt.datetime.now(dt.UTC)
    )


def _read_result(root: Path, path: Path) -> ResultFile:
    relative = path.relative_to(root).as_posix()
    try:
        return ResultFile(relative, json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ResultFile(relative, error=f"unreadable: {exc}")


def judge(evidence: Evidence, seen: Observations) -> Verdict:
    if isinstance(evidence, TestEvidence):
        return _judge_test(evidence, seen)
    if isinstance(evidence, ResultEvidence):
        return _judge_result(evidence, seen)
    return _judge_config(evidence, seen.config)


# --- tests -------------------------------------------------------------------------------


def _judge_test(evidence: TestEvidence, seen: Observations) -> Verdict:
    report = seen.junit
    if report is None:
        return Verdict(State.MISSING, seen.junit_problem or "no JUnit report")
    changed = _changed_since_run(evidence, report, seen)
    if changed:
        return Verdict(State.STALE, f"changed since the test run: {', '.join(changed)}")
    failed, skipped, passed = [], [], 0
    for node in evidence.nodes:
        cases = report.cases_for(node)
        if not cases:
            return Verdict(State.MISSING, f"{node} is not in {report.path}")
        for name, case in cases:
            if case.outcome in ("failed", "error"):
                failed.append(f"{name} {case.outcome}")
            elif case.outcome == "skipped":
                skipped.append(f"{name} skipped ({case.message})")
            else:
                passed += 1
    if failed:
        return Verdict(State.FAILING, "; ".join(failed[:3]))
    if skipped:
        return Verdict(State.MISSING, "; ".join(skipped[:3]))
    return Verdict(State.PASSING, f"{passed} passed in {report.path}")


def _changed_since_run(evidence: TestEvidence, report: JunitReport, seen: Observations) -> list[str]:
    files = evidence.files()
    if report.sources is None:
        # No recorded hashes (a report from another runner): nothing tells which code it ran on.
        return ["every file (the report records no source hashes)"]
    return [f for f in files if seen.sources.get(f) is None or seen.sources.get(f) != report.sources.get(f)]


# --- result files ------------------------------------------------------------------------


def _judge_result(evidence: ResultEvidence, seen: Observations) -> Verdict:
    candidates = [
        file
        for pattern in evidence.files
        for file in seen.results.get(pattern, ())
        if file.error is None and _matches(file.document, evidence.match)
    ]
    unreadable = [f"{f.path}: {f.error}" for p in evidence.files for f in seen.results.get(p, ()) if f.error]
    if not candidates:
        why = "; ".join(unreadable) if unreadable else f"no result file matches {', '.join(evidence.files)}"
        return Verdict(State.MISSING, why)
    if evidence.bound_to_model:
        served = [f for f in candidates if f.document.get("model_sha256") == seen.model_sha256]
        if not served:
            hashes = sorted({str(f.document.get("model_sha256"))[:12] for f in candidates})
            return Verdict(
                State.STALE,
                f"{', '.join(f.path for f in candidates)} measured on model {', '.join(hashes)}…, "
                f"not the served {str(seen.model_sha256)[:12]}…",
            )
        candidates = served
    if evidence.bound_to_sources:
        current = [f for f in candidates if _sources_unchanged(f.document, evidence.bound_to_sources, seen)]
        if not current:
            return Verdict(
                State.STALE,
                f"{', '.join(f.path for f in candidates)} measured against another "
                f"{', '.join(evidence.bound_to_sources)} than the one there now",
            )
        candidates = current
    file = candidates[-1]
    try:
        value = metric_value(file.document, evidence.metric)
    except ThreatModelError as exc:
        return Verdict(State.FAILING, f"{file.path}: {exc}")
    state = State.PASSING if evidence.condition.holds(value) else State.FAILING
    return Verdict(
        state, f"{file.path}: {evidence.metric} = {value:g}, needs {evidence.condition}", f"{value:g}"
    )


def _sources_unchanged(document: Any, paths: tuple[str, ...], seen: Observations) -> bool:
    recorded = document.get("sources")
    if not isinstance(recorded, dict):
        return False
    return all(seen.sources.get(p) is not None and recorded.get(p) == seen.sources.get(p) for p in paths)


def _matches(document: Any, match: Mapping[str, object]) -> bool:
    return isinstance(document, dict) and all(document.get(k) == v for k, v in match.items())


_SEGMENT = re.compile(r"([A-Za-z_][\w-]*)(?:\[(\d+|[A-Za-z_]\w*=[^\]]+)\])?$")


def metric_value(document: Any, path: str) -> float:
    """Follow ``a.b[0].c`` or ``results[eps=0.3].robust_accuracy`` to a finite number."""
    value = document
    for segment in re.split(r"\.(?![^\[]*\])", path):  # dots inside [key=0.3] do not split
        found = _SEGMENT.match(segment)
        if not found:
            raise ThreatModelError(f"bad metric path segment {segment!r}")
        name, selector = found.groups()
        if not isinstance(value, dict) or name not in value:
            raise ThreatModelError(f"no field {name!r} on the way to {path}")
        value = value[name]
        if selector is not None:
            value = _select(value, selector, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ThreatModelError(f"{path} is {value!r}, not a finite number")
    return float(value)


def _select(value: Any, selector: str, path: str) -> Any:
    if not isinstance(value, list):
        raise ThreatModelError(f"{path}: [{selector}] applied to something that is not a list")
    if selector.isdigit():
        if int(selector) >= len(value):
            raise ThreatModelError(f"{path}: index {selector} out of range")
        return value[int(selector)]
    key, _, wanted = selector.partition("=")
    for item in value:
        if isinstance(item, dict) and key in item and _same(item[key], wanted):
            return item
    raise ThreatModelError(f"{path}: no entry with {key} = {wanted}")


def _same(actual: object, wanted: str) -> bool:
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        try:
            return math.isclose(float(actual), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return str(actual) == wanted


# --- configuration -----------------------------------------------------------------------

CONFIG_CHECKS = frozenset(
    {"true", "false", "equals", "at_most", "at_least", "rate_at_most", "scheme_in", "one_of"}
)
_ABSENT = object()


def _judge_config(evidence: ConfigEvidence, config: Mapping[str, Any]) -> Verdict:
    value = config.get(evidence.setting, _ABSENT)
    if value is _ABSENT:
        value = evidence.default
    shown = display_value(evidence.setting, value)
    if value is None and evidence.check not in ("false", "equals"):
        return Verdict(State.FAILING, f"{evidence.setting} is not set", shown)
    try:
        holds = _config_holds(evidence, value)
    except (TypeError, ValueError) as exc:
        return Verdict(State.FAILING, f"{evidence.setting} = {shown}: cannot be checked ({exc})", shown)
    wanted = describe_check(evidence)
    state = State.PASSING if holds else State.FAILING
    return Verdict(state, f"{evidence.setting} = {shown}, needs {wanted}", shown)


def _config_holds(evidence: ConfigEvidence, value: Any) -> bool:
    check, expected = evidence.check, evidence.expected
    if check == "true":
        return value is True
    if check == "false":
        return value is False or value is None
    if check == "equals":
        return value == expected
    if check == "at_most":
        return _number(value) <= _number(expected)
    if check == "at_least":
        return _number(value) >= _number(expected)
    if check == "rate_at_most":
        return rate_cap(str(value), str(expected)) <= _limit_items(str(expected))[0].amount
    if check == "one_of":
        return str(value).lower() in tuple(expected)  # type: ignore[arg-type]
    # scheme_in
    return str(value).partition("://")[0] in tuple(expected)  # type: ignore[arg-type]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite")
    return number


def _limit_items(text: str):
    from limits import parse_many

    items = parse_many(text)
    if not items:
        raise ValueError(f"{text!r} is not a rate limit")
    return items


def rate_cap(limits_text: str, window_text: str) -> int:
    """The most requests ``limits_text`` (e.g. ``"600/minute;10000/day"``) lets through in the window
    of ``window_text`` (e.g. ``"10000/day"``): for each limit, its amount times the number of its
    windows that fit; the strictest limit wins."""
    window = _limit_items(window_text)[0].get_expiry()
    return min(item.amount * math.ceil(window / item.get_expiry()) for item in _limit_items(limits_text))


def describe_check(evidence: ConfigEvidence) -> str:
    check, expected = evidence.check, evidence.expected
    if check == "scheme_in":
        return f"a {' or '.join(f'{s}://' for s in expected)} URI"  # type: ignore[attr-defined]
    if check == "one_of":
        return f"one of {', '.join(map(repr, expected))}"  # type: ignore[call-overload]
    words = {
        "true": "true",
        "false": "false (or unset)",
        "equals": f"= {expected!r}",
        "at_most": f"≤ {expected}",
        "at_least": f"≥ {expected}",
        "rate_at_most": f"at most {expected}",
    }
    return words[check]


SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "KEY_FILE")


def display_value(key: str, value: Any) -> str:
    """A configuration value as it may be shown: never a secret, never a URI's credentials."""
    if value is None:
        return "unset"
    if any(word in key for word in SECRET_WORDS):
        return "(set)"
    if key.endswith(("_URI", "_URL")):
        return f"{str(value).partition('://')[0]}://…"
    return repr(value) if isinstance(value, str) else str(value)


def model_evidence(model: ThreatModel) -> list[Evidence]:
    return [e for control in model.controls for e in control.evidence]


def verdicts(evidence: Iterable[Evidence], seen: Observations) -> dict[str, Verdict]:
    """Every piece of evidence, judged once, by its key."""
    return {evidence_key(e): judge(e, seen) for e in evidence}


def all_nodes(model: ThreatModel) -> list[str]:
    """Every pytest node id the model's evidence names (to run just those)."""
    return list(
        dict.fromkeys(
            n for c in model.controls for e in c.evidence if isinstance(e, TestEvidence) for n in e.nodes
        )
    )


def covered_files(model: ThreatModel) -> Iterable[str]:
    return dict.fromkeys(
        f for c in model.controls for e in c.evidence if isinstance(e, TestEvidence) for f in e.files()
    )
