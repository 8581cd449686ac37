"""The threat model is complete and consistent: every seed threat, every STRIDE category, every flow."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from digitguard.threatmodel.catalog import MODEL
from digitguard.threatmodel.evidence import TestEvidence, model_evidence
from digitguard.threatmodel.model import Element, Flow, Kind, Level, Stride, Threat, ThreatModel, Zone, risk
from digitguard.threatmodel.report import correction_evidence
from digitguard.threatmodel.seeds import SEED_ITEMS, SEED_MITIGATIONS
from tests.conftest import REPO_ROOT


class TestCompleteness:
    def test_the_catalogue_has_no_problems(self) -> None:
        assert MODEL.problems() == []

    @pytest.mark.parametrize("item", SEED_ITEMS, ids=lambda i: i.id)
    def test_every_seed_threat_is_in_the_model(self, item) -> None:
        assert any(ref.item == item.id for t in MODEL.threats for ref in t.seeds)

    def test_every_seed_reference_names_a_real_seed_item(self) -> None:
        known = {i.id for i in SEED_ITEMS}
        assert {ref.item for t in MODEL.threats for ref in t.seeds} <= known

    @pytest.mark.parametrize("element", MODEL.elements, ids=lambda e: e.id)
    def test_every_element_has_all_six_stride_categories_considered(self, element: Element) -> None:
        for category in Stride:
            has_threat = any(t.stride is category for t in MODEL.threats_on(element.id))
            assert has_threat != bool(element.not_applicable.get(category)), category

    @pytest.mark.parametrize("flow", MODEL.flows, ids=lambda f: f.id)
    def test_every_flow_crosses_a_declared_boundary_or_is_declared_internal(self, flow: Flow) -> None:
        declared = {b.id for b in MODEL.boundaries}
        if flow.internal:
            assert flow.crosses == () and MODEL.crossed_boundaries(flow) == ()
        else:
            assert flow.crosses and set(flow.crosses) <= declared
            assert set(flow.crosses) == set(MODEL.crossed_boundaries(flow))

    def test_the_issue_s_elements_and_boundaries_are_all_there(self) -> None:
        ids = {e.id for e in MODEL.elements}
        assert {
            "browser",
            "web-app",
            "api-clients",
            "model-store",
            "training",
            "dataset-store",
            "audit-trail",
            "key-store",
            "administrators",
        } <= ids
        assert {"internet-app", "app-storage", "training-storage"} <= {b.id for b in MODEL.boundaries}

    def test_every_threat_has_an_atlas_or_owasp_id_and_ml_threats_have_both(self) -> None:
        for threat in MODEL.threats:
            assert threat.atlas or threat.owasp, threat.id
            # The OWASP ML Top 10 has no availability category, so denial of service has ATLAS ids only.
            if (
                any(ref.document == "001" for ref in threat.seeds)
                and threat.stride is not Stride.DENIAL_OF_SERVICE
            ):
                assert threat.atlas and threat.owasp, threat.id

    def test_every_seed_mitigation_line_names_known_controls(self) -> None:
        controls = {c.id for c in MODEL.controls}
        for line in SEED_MITIGATIONS:
            assert set(line.controls) <= controls
            assert line.controls or line.note, line.text


def _defined_tests(path) -> set[str]:
    """Node-id suffixes (Class, Class::test, test) defined in a test module."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found.add(node.name)
            found |= {f"{node.name}::{f.name}" for f in node.body if isinstance(f, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            found.add(node.name)
    return found


class TestEvidenceNamesRealThings:
    @pytest.mark.parametrize(
        "evidence",
        [e for e in [*model_evidence(MODEL), *correction_evidence()] if isinstance(e, TestEvidence)],
        ids=lambda e: e.nodes[0][:60],
    )
    def test_every_named_test_exists_and_every_covered_file_too(self, evidence: TestEvidence) -> None:
        for node in evidence.nodes:
            path, _, rest = node.partition("::")
            assert (REPO_ROOT / path).is_file(), node
            assert rest in _defined_tests(REPO_ROOT / path), node
        for covered in evidence.covers:
            assert (REPO_ROOT / covered).is_file(), covered


class TestProblemsAreFound:
    def model_with(self, **changes) -> ThreatModel:
        return dataclasses.replace(MODEL, **changes)

    def test_a_missing_stride_category(self) -> None:
        lonely = Element("lonely", "Lonely", Kind.PROCESS, "app", "nothing threatens it")
        problems = self.model_with(elements=(*MODEL.elements, lonely)).problems()
        assert len([p for p in problems if p.startswith("element lonely")]) == 6

    def test_a_flow_inside_one_zone_not_declared_internal(self) -> None:
        flow = Flow("odd", "model-store", "audit-trail", "copies", not_applicable=dict.fromkeys(Stride, "x"))
        assert any(
            "crosses no boundary and is not declared internal" in p
            for p in self.model_with(flows=(*MODEL.flows, flow)).problems()
        )

    def test_a_flow_claiming_a_boundary_it_does_not_cross(self) -> None:
        flow = Flow(
            "odd",
            "model-store",
            "audit-trail",
            "copies",
            crosses=("internet-app",),
            not_applicable=dict.fromkeys(Stride, "x"),
        )
        assert any("declares boundaries" in p for p in self.model_with(flows=(*MODEL.flows, flow)).problems())

    def test_an_unknown_atlas_id_and_control(self) -> None:
        threat = Threat(
            "X",
            "x",
            Stride.SPOOFING,
            "web-app",
            "x",
            Level.LOW,
            Level.LOW,
            ("AML.T9999",),
            (),
            ("no-such-control",),
        )
        problems = self.model_with(threats=(*MODEL.threats, threat)).problems()
        assert "threat X: unknown ATLAS id 'AML.T9999'" in problems
        assert "threat X: unknown control 'no-such-control'" in problems

    def test_an_element_in_an_unknown_zone(self) -> None:
        zones = (*(z for z in MODEL.zones if z.id != "operators"), Zone("elsewhere", "Elsewhere", "?"))
        assert any("unknown zone" in p for p in self.model_with(zones=zones).problems())


class TestRiskMatrix:
    @pytest.mark.parametrize(
        ("likelihood", "impact", "expected"),
        [
            ("LOW", "LOW", "LOW"),
            ("LOW", "HIGH", "MEDIUM"),
            ("MEDIUM", "HIGH", "HIGH"),
            ("HIGH", "MEDIUM", "HIGH"),
            ("MEDIUM", "CRITICAL", "HIGH"),
            ("HIGH", "HIGH", "CRITICAL"),
            ("MEDIUM", "MEDIUM", "MEDIUM"),
            ("MEDIUM", "LOW", "LOW"),
        ],
    )
    def test_likelihood_times_impact(self, likelihood: str, impact: str, expected: str) -> None:
        assert risk(Level[likelihood], Level[impact]) is Level[expected]
