"""Verdicts on fixture evidence: passing, failing, stale and missing, for tests, results and configuration."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import ClassVar

import pytest

from digitguard.threatmodel.evidence import (
    Condition,
    ConfigEvidence,
    Observations,
    ResultEvidence,
    State,
    TestEvidence,
    display_value,
    gather,
    judge,
    metric_value,
    rate_cap,
)
from digitguard.threatmodel.junit import parse_report
from digitguard.threatmodel.model import ThreatModelError
from tests.threatmodel.conftest import hashes, write_junit

NODE = "tests/test_a.py::TestThing::test_works"
SERVED = "a" * 64


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_works(): pass\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    return tmp_path


EVIDENCE = TestEvidence((NODE,), covers=("src/code.py",))


def verdict_for(evidence, root: Path, junit: Path | None = None, config=None, model=SERVED):
    seen = gather(
        [evidence],
        root=root,
        config=config or {},
        model_sha256=model,
        junit_path=junit,
        now=dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
    )
    return judge(evidence, seen)


class TestTestEvidence:
    def test_passing_when_the_node_passed_on_the_code_as_it_is(self, root: Path) -> None:
        junit = write_junit(root / "junit.xml", {NODE: "passed"}, hashes(root, EVIDENCE.files()))
        assert verdict_for(EVIDENCE, root, junit).state is State.PASSING

    def test_parametrised_cases_all_count(self, root: Path) -> None:
        junit = write_junit(
            root / "junit.xml",
            {NODE + "[1]": "passed", NODE + "[2]": "failed"},
            hashes(root, EVIDENCE.files()),
        )
        verdict = verdict_for(EVIDENCE, root, junit)
        assert verdict.state is State.FAILING and "test_works[2] failed" in verdict.detail

    def test_a_class_node_covers_its_tests(self, root: Path) -> None:
        evidence = TestEvidence(("tests/test_a.py::TestThing",))
        junit = write_junit(root / "junit.xml", {NODE: "passed"}, hashes(root, evidence.files()))
        assert verdict_for(evidence, root, junit).state is State.PASSING

    @pytest.mark.parametrize("outcome", ["failed", "error"])
    def test_failing(self, root: Path, outcome: str) -> None:
        junit = write_junit(root / "junit.xml", {NODE: outcome}, hashes(root, EVIDENCE.files()))
        assert verdict_for(EVIDENCE, root, junit).state is State.FAILING

    def test_a_skipped_test_is_missing_evidence(self, root: Path) -> None:
        junit = write_junit(root / "junit.xml", {NODE: "skipped"}, hashes(root, EVIDENCE.files()))
        verdict = verdict_for(EVIDENCE, root, junit)
        assert verdict.state is State.MISSING and "skipped" in verdict.detail

    def test_a_node_not_in_the_report_is_missing(self, root: Path) -> None:
        junit = write_junit(
            root / "junit.xml", {"tests/test_a.py::test_other": "passed"}, hashes(root, EVIDENCE.files())
        )
        assert verdict_for(EVIDENCE, root, junit).state is State.MISSING

    def test_no_report_is_missing(self, root: Path) -> None:
        assert verdict_for(EVIDENCE, root, root / "nowhere.xml").state is State.MISSING

    def test_a_covered_file_changed_since_the_run_makes_it_stale(self, root: Path) -> None:
        junit = write_junit(root / "junit.xml", {NODE: "passed"}, hashes(root, EVIDENCE.files()))
        (root / "src" / "code.py").write_text("x = 2\n")
        verdict = verdict_for(EVIDENCE, root, junit)
        assert verdict.state is State.STALE and "src/code.py" in verdict.detail

    def test_the_test_file_itself_changed_makes_it_stale(self, root: Path) -> None:
        junit = write_junit(root / "junit.xml", {NODE: "passed"}, hashes(root, EVIDENCE.files()))
        (root / "tests" / "test_a.py").write_text("def test_works(): assert False\n")
        assert verdict_for(EVIDENCE, root, junit).state is State.STALE

    def test_a_report_without_source_hashes_is_stale(self, root: Path) -> None:
        junit = write_junit(root / "junit.xml", {NODE: "passed"}, None)
        assert verdict_for(EVIDENCE, root, junit).state is State.STALE


class TestJunitParsing:
    def test_a_dtd_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "j.xml"
        path.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><testsuite/>')
        with pytest.raises(ThreatModelError, match="DTD"):
            parse_report(path)

    def test_malformed_xml_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "j.xml"
        path.write_text("<testsuites><testsuite>")
        with pytest.raises(ThreatModelError, match="well-formed"):
            parse_report(path)

    def test_a_report_written_by_pytest_itself_round_trips(self, tmp_path: Path) -> None:
        import subprocess
        import sys

        (tmp_path / "test_x.py").write_text(
            "import pytest\n"
            "@pytest.fixture(scope='session', autouse=True)\n"
            "def s(record_testsuite_property):\n    record_testsuite_property('digitguard.sources', '{}')\n"
            "def test_ok(): pass\n"
            "@pytest.mark.parametrize('x', [1, 2])\ndef test_p(x): assert x == 1\n"
        )
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=j.xml", "test_x.py"],
            cwd=tmp_path,
            capture_output=True,
            check=False,
        )
        report = parse_report(tmp_path / "j.xml")
        assert report.sources == {}
        assert [c.outcome for _, c in report.cases_for("test_x.py::test_ok")] == ["passed"]
        assert sorted(c.outcome for _, c in report.cases_for("test_x.py::test_p")) == ["failed", "passed"]


AUTOATTACK = ResultEvidence(
    "AutoAttack",
    ("docs/robustness/*.json",),
    "results[eps=0.3].robust_accuracy",
    Condition(">=", 0.93),
    match={"attack": "autoattack"},
)


def write_result(root: Path, name: str, document: object) -> None:
    (root / "docs" / "robustness").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "robustness" / name).write_text(json.dumps(document))


def attack_result(accuracy: float, model: str = SERVED, attack: str = "autoattack") -> dict:
    return {
        "attack": attack,
        "model_sha256": model,
        "results": [{"eps": 0.1, "robust_accuracy": 0.99}, {"eps": 0.3, "robust_accuracy": accuracy}],
    }


class TestResultEvidence:
    def test_passing_on_the_served_model(self, root: Path) -> None:
        write_result(root, "autoattack-result.json", attack_result(0.94))
        verdict = verdict_for(AUTOATTACK, root)
        assert verdict.state is State.PASSING and verdict.measured == "0.94"

    def test_failing_below_the_condition(self, root: Path) -> None:
        write_result(root, "autoattack-result.json", attack_result(0.12))
        assert verdict_for(AUTOATTACK, root).state is State.FAILING

    def test_measured_on_another_model_is_stale(self, root: Path) -> None:
        write_result(root, "autoattack-result.json", attack_result(0.99, model="b" * 64))
        verdict = verdict_for(AUTOATTACK, root)
        assert verdict.state is State.STALE and "bbbbbbbbbbbb" in verdict.detail

    def test_the_served_model_s_file_is_chosen_among_several(self, root: Path) -> None:
        write_result(root, "a-old.json", attack_result(0.99, model="b" * 64))
        write_result(root, "b-new.json", attack_result(0.5))
        assert verdict_for(AUTOATTACK, root).state is State.FAILING

    def test_no_file_or_another_attack_is_missing(self, root: Path) -> None:
        assert verdict_for(AUTOATTACK, root).state is State.MISSING
        write_result(root, "fgsm-result.json", attack_result(0.99, attack="fgsm"))
        assert verdict_for(AUTOATTACK, root).state is State.MISSING

    def test_an_unreadable_file_is_missing_and_says_why(self, root: Path) -> None:
        (root / "docs" / "robustness").mkdir(parents=True)
        (root / "docs" / "robustness" / "autoattack-result.json").write_text("{not json")
        verdict = verdict_for(AUTOATTACK, root)
        assert verdict.state is State.MISSING and "unreadable" in verdict.detail

    def test_a_metric_path_that_leads_nowhere_fails_never_passes(self, root: Path) -> None:
        write_result(root, "autoattack-result.json", {"attack": "autoattack", "model_sha256": SERVED})
        verdict = verdict_for(AUTOATTACK, root)
        assert verdict.state is State.FAILING and "results" in verdict.detail


LOCKED = ResultEvidence(
    "audit",
    ("reports/supply-chain/*.json",),
    "findings",
    Condition("==", 0),
    bound_to_model=False,
    bound_to_sources=("requirements.lock",),
)


class TestResultsBoundToSources:
    """A measurement of a file (the supply-chain audit of the lock) is stale once the file changed."""

    def write_audit(self, root: Path, lock_text: str, findings: int = 0) -> None:
        import hashlib

        (root / "reports" / "supply-chain").mkdir(parents=True, exist_ok=True)
        document = {
            "findings": findings,
            "sources": {"requirements.lock": hashlib.sha256(lock_text.encode()).hexdigest()},
        }
        (root / "reports" / "supply-chain" / "dependencies.json").write_text(json.dumps(document))

    def test_passing_when_measured_on_the_file_as_it_is(self, root: Path) -> None:
        (root / "requirements.lock").write_text("a==1\n")
        self.write_audit(root, "a==1\n")
        assert verdict_for(LOCKED, root, model=None).state is State.PASSING

    def test_stale_once_the_file_changed(self, root: Path) -> None:
        self.write_audit(root, "a==1\n")
        (root / "requirements.lock").write_text("a==2\n")
        verdict = verdict_for(LOCKED, root, model=None)
        assert verdict.state is State.STALE and "requirements.lock" in verdict.detail

    def test_stale_when_the_file_is_gone_or_the_result_records_no_sources(self, root: Path) -> None:
        self.write_audit(root, "a==1\n")
        assert verdict_for(LOCKED, root, model=None).state is State.STALE
        (root / "requirements.lock").write_text("a==1\n")
        (root / "reports" / "supply-chain" / "dependencies.json").write_text(json.dumps({"findings": 0}))
        assert verdict_for(LOCKED, root, model=None).state is State.STALE

    def test_failing_with_findings_on_the_current_file(self, root: Path) -> None:
        (root / "requirements.lock").write_text("a==1\n")
        self.write_audit(root, "a==1\n", findings=1)
        assert verdict_for(LOCKED, root, model=None).state is State.FAILING


class TestMetricPaths:
    DOC: ClassVar[dict] = {
        "a": {"b": [1, 2.5]},
        "rows": [{"eps": 0.3, "v": 0.5}],
        "nan": float("nan"),
        "flag": True,
    }

    @pytest.mark.parametrize(("path", "value"), [("a.b[1]", 2.5), ("rows[eps=0.3].v", 0.5), ("a.b[0]", 1.0)])
    def test_values(self, path: str, value: float) -> None:
        assert metric_value(self.DOC, path) == value

    @pytest.mark.parametrize(
        "path", ["a.c", "a.b[5]", "rows[eps=0.2].v", "nan", "flag", "a", "a..b", "a.b[x"]
    )
    def test_anything_else_is_refused(self, path: str) -> None:
        with pytest.raises(ThreatModelError):
            metric_value(self.DOC, path)


def config_verdict(evidence: ConfigEvidence, config: dict) -> State:
    seen = Observations(config, None, None, None, {}, {}, dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    return judge(evidence, seen).state


class TestConfigEvidence:
    @pytest.mark.parametrize(
        ("evidence", "config", "state"),
        [
            (ConfigEvidence("on", "RATELIMIT_ENABLED", "true", default=True), {}, State.PASSING),
            (
                ConfigEvidence("on", "RATELIMIT_ENABLED", "true", default=True),
                {"RATELIMIT_ENABLED": False},
                State.FAILING,
            ),
            (ConfigEvidence("tls", "TLS", "true"), {"TLS": "true"}, State.FAILING),  # a string is not True
            (
                ConfigEvidence("off", "AUDIT_STORE_INPUTS", "false"),
                {"AUDIT_STORE_INPUTS": False},
                State.PASSING,
            ),
            (
                ConfigEvidence("full", "AUDIT_SQLITE_SYNCHRONOUS", "equals", "FULL"),
                {"AUDIT_SQLITE_SYNCHRONOUS": "NORMAL"},
                State.FAILING,
            ),
            (
                ConfigEvidence("cap", "MAX_CONTENT_LENGTH", "at_most", 100),
                {"MAX_CONTENT_LENGTH": 101},
                State.FAILING,
            ),
            (ConfigEvidence("cap", "MAX_CONTENT_LENGTH", "at_most", 100), {}, State.FAILING),
            (
                ConfigEvidence("cap", "MAX_CONTENT_LENGTH", "at_most", 100),
                {"MAX_CONTENT_LENGTH": "lots"},
                State.FAILING,
            ),
            (
                ConfigEvidence("rate", "ANONYMOUS_LIMIT", "rate_at_most", "60/minute"),
                {"ANONYMOUS_LIMIT": "30/minute"},
                State.PASSING,
            ),
            (
                ConfigEvidence("rate", "ANONYMOUS_LIMIT", "rate_at_most", "60/minute"),
                {"ANONYMOUS_LIMIT": "10/second"},
                State.FAILING,
            ),
            (
                ConfigEvidence("rate", "ANONYMOUS_LIMIT", "rate_at_most", "60/minute"),
                {"ANONYMOUS_LIMIT": "no limit"},
                State.FAILING,
            ),
            (
                ConfigEvidence("redis", "RATELIMIT_STORAGE_URI", "scheme_in", ("redis",)),
                {"RATELIMIT_STORAGE_URI": "redis://:pw@host:6379"},
                State.PASSING,
            ),
            (
                ConfigEvidence("redis", "RATELIMIT_STORAGE_URI", "scheme_in", ("redis",)),
                {"RATELIMIT_STORAGE_URI": "fixed-memory://"},
                State.FAILING,
            ),
        ],
    )
    def test_checks(self, evidence: ConfigEvidence, config: dict, state: State) -> None:
        assert config_verdict(evidence, config) is state

    def test_the_strictest_limit_caps_the_window(self) -> None:
        assert rate_cap("600/minute;10000/day", "10000/day") == 10000
        assert rate_cap("600/minute", "10000/day") == 600 * 1440

    @pytest.mark.parametrize(
        ("key", "value", "shown"),
        [
            ("SECRET_KEY", "hunter2" * 6, "(set)"),
            ("DATABASE_URL", "postgresql://u:pw@db/x", "postgresql://…"),
            ("RATELIMIT_STORAGE_URI", "redis://:pw@r:6379", "redis://…"),
            ("TLS", False, "False"),
            ("AUDIT_SIGNING_KEY_FILE", "/secret/path", "(set)"),
        ],
    )
    def test_shown_values_never_contain_secrets(self, key: str, value: object, shown: str) -> None:
        assert display_value(key, value) == shown
