"""Status and residual risk come from the verdicts alone; a control switched off in the config flips them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from digitguard.threatmodel.baseline import regressions, snapshot
from digitguard.threatmodel.catalog import MODEL
from digitguard.threatmodel.evidence import (
    ConfigEvidence,
    State,
    TestEvidence,
    Verdict,
    all_nodes,
    covered_files,
    evidence_key,
)
from digitguard.threatmodel.model import (
    Acceptance,
    Control,
    Element,
    Kind,
    Level,
    Stride,
    Threat,
    ThreatModel,
    Zone,
)
from digitguard.threatmodel.report import evaluate
from digitguard.threatmodel.status import Status, assess
from digitguard.web import DEFAULTS
from digitguard.web.limits import LIMIT_DEFAULTS
from tests.conftest import REPO_ROOT
from tests.threatmodel.conftest import hashes, write_junit

DAY = dt.date(2026, 11, 23)
A = TestEvidence(("tests/test_a.py::test_a",))
B = ConfigEvidence("b on", "B", "true")


def tiny(acceptance: Acceptance | None = None) -> ThreatModel:
    controls = (
        Control("ca", "A", "a", (A,), reduces_likelihood=2),
        Control("cb", "B", "b", (B,), reduces_impact=1),
    )
    na = dict.fromkeys([s for s in Stride if s is not Stride.SPOOFING], "n/a")
    threat = Threat(
        "T1",
        "t",
        Stride.SPOOFING,
        "e",
        "d",
        Level.HIGH,
        Level.HIGH,
        ("AML.T0043",),
        (),
        ("ca", "cb"),
        acceptance=acceptance,
    )
    return ThreatModel(
        (Zone("z", "Z", "us"),), (), (Element("e", "E", Kind.PROCESS, "z", "e", na),), (), controls, (threat,)
    )


def verdicts(a: State, b: State) -> dict[str, Verdict]:
    return {evidence_key(A): Verdict(a, ""), evidence_key(B): Verdict(b, "")}


class TestStatus:
    def test_every_control_shown_is_mitigated_with_the_reductions_applied(self) -> None:
        result = assess(tiny(), verdicts(State.PASSING, State.PASSING), DAY).of("T1")
        assert result.status is Status.MITIGATED
        assert (result.residual_likelihood, result.residual_impact) == (Level.LOW, Level.MEDIUM)
        assert result.residual is Level.LOW and not result.gap

    def test_some_controls_shown_is_partly_mitigated(self) -> None:
        result = assess(tiny(), verdicts(State.PASSING, State.FAILING), DAY).of("T1")
        assert result.status is Status.PARTLY
        assert result.residual is Level.MEDIUM and result.gap  # low × high

    @pytest.mark.parametrize("state", [State.FAILING, State.STALE, State.MISSING])
    def test_failing_stale_and_missing_evidence_all_count_as_not_shown(self, state: State) -> None:
        result = assess(tiny(), verdicts(state, state), DAY).of("T1")
        assert result.status is Status.NOT
        assert result.residual is Level.CRITICAL and result.gap

    def test_unevaluated_evidence_is_missing(self) -> None:
        assert assess(tiny(), {}, DAY).of("T1").status is Status.NOT

    def test_a_valid_acceptance_is_accepted_an_expired_one_is_not(self) -> None:
        acceptance = Acceptance("the owner", "because", dt.date(2026, 12, 31))
        model = tiny(acceptance)
        assert assess(model, verdicts(State.MISSING, State.MISSING), DAY).of("T1").status is Status.ACCEPTED
        later = dt.date(2027, 1, 1)
        assert assess(model, verdicts(State.MISSING, State.MISSING), later).of("T1").status is Status.NOT

    def test_evidence_that_passes_beats_an_acceptance(self) -> None:
        model = tiny(Acceptance("the owner", "because", dt.date(2026, 12, 31)))
        assert assess(model, verdicts(State.PASSING, State.PASSING), DAY).of("T1").status is Status.MITIGATED


class TestBaseline:
    def test_the_same_assessment_has_no_regression(self) -> None:
        now = assess(tiny(), verdicts(State.PASSING, State.FAILING), DAY)
        assert regressions(now, snapshot(now)) == []

    def test_an_improvement_is_not_a_regression(self) -> None:
        before = snapshot(assess(tiny(), verdicts(State.PASSING, State.FAILING), DAY))
        assert regressions(assess(tiny(), verdicts(State.PASSING, State.PASSING), DAY), before) == []

    def test_evidence_that_stops_passing_is_a_regression(self) -> None:
        before = snapshot(assess(tiny(), verdicts(State.PASSING, State.FAILING), DAY))
        found = regressions(assess(tiny(), verdicts(State.STALE, State.FAILING), DAY), before)
        assert any("was passing, now stale" in f for f in found)
        assert any("partly mitigated → not mitigated" in f for f in found)
        assert any("residual risk medium → critical" in f for f in found)

    def test_a_threat_removed_from_the_model_is_a_regression(self) -> None:
        before = snapshot(assess(tiny(), verdicts(State.PASSING, State.PASSING), DAY))
        before["threats"]["GONE"] = {"status": "not mitigated", "residual": "high", "passing": []}
        found = regressions(assess(tiny(), verdicts(State.PASSING, State.PASSING), DAY), before)
        assert found == ["GONE: in the baseline but gone from the model"]


@pytest.fixture(scope="module")
def all_passing_junit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUnit report in which every test the model names passed, on the code as it is now."""
    path = tmp_path_factory.mktemp("junit") / "junit.xml"
    return write_junit(
        path, dict.fromkeys(all_nodes(MODEL), "passed"), hashes(REPO_ROOT, covered_files(MODEL))
    )


def assessment_for(junit: Path, **config: object):
    return evaluate(
        config={**DEFAULTS, **LIMIT_DEFAULTS, **config},
        model_sha256="f" * 64,
        model_name="basic",
        config_source="test",
        junit_path=junit,
    ).assessment


class TestTheRealModel:
    def test_turning_rate_limiting_off_in_the_config_flips_the_status(self, all_passing_junit: Path) -> None:
        on = assessment_for(all_passing_junit).of("MODEL-EXTRACTION")
        off = assessment_for(all_passing_junit, RATELIMIT_ENABLED=False).of("MODEL-EXTRACTION")
        assert on.status is Status.PARTLY and off.status is Status.NOT
        assert next(c for c in on.controls if c.control.id == "rate-limits").effective
        assert not next(c for c in off.controls if c.control.id == "rate-limits").effective

    def test_turning_tls_on_mitigates_sniffing(self, all_passing_junit: Path) -> None:
        assert assessment_for(all_passing_junit).of("TOKEN-SNIFFING").status is Status.NOT
        assert assessment_for(all_passing_junit, TLS=True).of("TOKEN-SNIFFING").status is Status.MITIGATED

    def test_normal_synchronous_audit_writes_lose_the_audit_loss_mitigation(
        self, all_passing_junit: Path
    ) -> None:
        assert assessment_for(all_passing_junit).of("AUDIT-LOSS").status is Status.MITIGATED
        normal = assessment_for(all_passing_junit, AUDIT_SQLITE_SYNCHRONOUS="NORMAL").of("AUDIT-LOSS")
        assert normal.status is Status.PARTLY

    def test_results_that_do_not_exist_yet_are_missing_not_faked(self, all_passing_junit: Path) -> None:
        evasion = assessment_for(all_passing_junit).of("ADV-EVASION")
        robust = next(c for c in evasion.controls if c.control.id == "robust-model")
        assert not robust.effective and evasion.status is Status.PARTLY and evasion.gap

    def test_without_a_test_report_nothing_tested_counts(self, tmp_path: Path) -> None:
        assessment = assessment_for(tmp_path / "none.xml")
        assert assessment.of("MODEL-SPOOF").status is Status.NOT
        assert assessment.counts()[Status.MITIGATED] == 0
