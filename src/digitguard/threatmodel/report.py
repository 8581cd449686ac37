"""The report: Markdown with a Mermaid data-flow diagram, HTML with an SVG one, same content.

:func:`build` gathers everything a report shows into one :class:`Report`; ``to_markdown`` and
``to_html`` only render it. Every number comes from the assessment or the evidence verdicts.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitguard.threatmodel.catalog import MODEL
from digitguard.threatmodel.evidence import (
    ConfigEvidence,
    Evidence,
    ResultEvidence,
    State,
    TestEvidence,
    Verdict,
    describe_check,
    evidence_key,
    gather,
    model_evidence,
    verdicts,
)
from digitguard.threatmodel.model import IMPACTS, LIKELIHOODS, Element, Kind, Level, Stride, ThreatModel, risk
from digitguard.threatmodel.seeds import CORRECTIONS, SEED_FILES, SEED_ITEMS, SEED_MITIGATIONS, Correction
from digitguard.threatmodel.status import Assessment, Status, ThreatAssessment, assess, control_assessments
from digitguard.threatmodel.taxonomy import ATLAS, ATLAS_URL, OWASP_ML

# STRIDE per interaction considers tampering, disclosure and denial of a flow; the other three
# belong to the flow's ends (the elements), so their cells stay empty unless a threat names the flow.
FLOW_NA = dict.fromkeys((Stride.SPOOFING, Stride.REPUDIATION, Stride.ELEVATION_OF_PRIVILEGE), "")
MARK = {Status.MITIGATED: "✅", Status.ACCEPTED: "🟦", Status.PARTLY: "⚠️", Status.NOT: "❌"}
STATE_MARK = {State.PASSING: "✅", State.FAILING: "❌", State.STALE: "⏳", State.MISSING: "∅"}


@dataclass(frozen=True)
class Context:
    model_sha256: str | None
    model_name: str | None
    config_source: str
    junit_source: str
    generated_at: dt.datetime


@dataclass(frozen=True)
class Report:
    assessment: Assessment
    context: Context

    @property
    def model(self):
        return self.assessment.model

    def verdict(self, evidence: Evidence) -> Verdict:
        return self.assessment.verdicts.get(evidence_key(evidence), Verdict(State.MISSING, "not evaluated"))


CHECKOUT = Path(__file__).resolve().parents[3]
DEFAULT_JUNIT = Path("reports/junit.xml")


def correction_evidence() -> list[Evidence]:
    return [e for c in CORRECTIONS for e in c.evidence]


def evaluate(
    *,
    config: Mapping[str, Any],
    model_sha256: str | None,
    model_name: str | None,
    config_source: str,
    root: Path = CHECKOUT,
    junit_path: Path | None = None,
    model: ThreatModel = MODEL,
    now: dt.datetime | None = None,
) -> Report:
    """Judge every piece of evidence against the files under ``root``, assess the model, build the report."""
    junit = junit_path if junit_path is not None else root / DEFAULT_JUNIT
    evidence = [*model_evidence(model), *correction_evidence()]
    seen = gather(evidence, root=root, config=config, model_sha256=model_sha256, junit_path=junit, now=now)
    assessment = assess(model, verdicts(evidence, seen), seen.now.date())
    shown_junit = str(junit.relative_to(root)) if junit.is_relative_to(root) else str(junit)
    if seen.junit is None:
        shown_junit += " (missing)"
    elif seen.junit.timestamp is not None:
        shown_junit += f" ({seen.junit.timestamp:%Y-%m-%d %H:%M UTC})"
    context = Context(model_sha256, model_name, config_source, shown_junit, seen.now)
    return Report(assessment, context)


# --- shared content ---------------------------------------------------------------------------


def summary_line(assessment: Assessment) -> str:
    counts = assessment.counts()
    gaps = len(assessment.gaps())
    parts = ", ".join(f"{counts[s]} {s.value}" for s in Status)
    return (
        f"{len(assessment.threats)} threats: {parts}; "
        f"{gaps} open gaps (residual risk above low without passing evidence)"
    )


def evidence_text(evidence: Evidence) -> str:
    if isinstance(evidence, TestEvidence):
        return "tests " + ", ".join(evidence.nodes)
    if isinstance(evidence, ResultEvidence):
        bound = "on the served model" if evidence.bound_to_model else "any model"
        files = " or ".join(evidence.files)
        return f"{evidence.title}: {evidence.metric} {evidence.condition} in {files} ({bound})"
    assert isinstance(evidence, ConfigEvidence)
    return f"config {evidence.setting} {describe_check(evidence)} ({evidence.title})"


def evidence_kind(evidence: Evidence) -> str:
    return {TestEvidence: "test", ResultEvidence: "result", ConfigEvidence: "config"}[type(evidence)]


def stride_cells(
    report: Report, target: str, categories: Iterable[Stride], na: Mapping[Stride, str]
) -> list[str]:
    cells = []
    for category in categories:
        found = [
            a for a in report.assessment.threats if a.threat.target == target and a.threat.stride is category
        ]
        if found:
            cells.append(" ".join(f"{MARK[a.status]} {a.threat.id}" for a in found))
        else:
            cells.append("n/a" if category in na else "—")
    return cells


def matrix_counts(report: Report, residual: bool) -> dict[tuple[Level, Level], list[str]]:
    cells: dict[tuple[Level, Level], list[str]] = {(li, im): [] for li in LIKELIHOODS for im in IMPACTS}
    for a in report.assessment.threats:
        key = (
            (a.residual_likelihood, a.residual_impact) if residual else (a.threat.likelihood, a.threat.impact)
        )
        cells[key].append(a.threat.id)
    return cells


def seed_rows(report: Report) -> list[list[str]]:
    """Seed 001's risk matrix, next to the model's threats for the same item and their state now."""
    rows = []
    for item in SEED_ITEMS:
        if item.document != "001" or not item.risk:
            continue
        mapped = [a for a in report.assessment.threats if any(r.item == item.id for r in a.threat.seeds)]
        stated = f"{item.likelihood} × {item.impact} → {item.risk}"
        consistent = risk(Level[item.likelihood.upper()], Level[item.impact.upper()]).label == item.risk
        rows.append(
            [
                item.title,
                stated,
                "yes" if consistent else "**no**",
                item.status,
                "; ".join(
                    f"{a.threat.id}: {a.threat.likelihood.label} × {a.threat.impact.label} → "
                    f"{a.threat.inherent_risk.label}"
                    for a in mapped
                ),
                "; ".join(f"{MARK[a.status]} {a.status.value}, residual {a.residual.label}" for a in mapped),
            ]
        )
    return rows


def seed000_rows(report: Report) -> list[list[str]]:
    rows = []
    for item in SEED_ITEMS:
        if item.document != "000":
            continue
        mapped = [a for a in report.assessment.threats if any(r.item == item.id for r in a.threat.seeds)]
        rows.append(
            [
                item.id.split(".")[1],
                item.id.split(".")[2],
                item.title,
                item.risk,
                "; ".join(
                    f"{a.threat.id} {a.threat.inherent_risk.label} → {MARK[a.status]} residual "
                    f"{a.residual.label}"
                    for a in mapped
                ),
            ]
        )
    return rows


def mitigation_rows(report: Report) -> list[list[str]]:
    controls = control_assessments(report.assessment.model, report.assessment.verdicts)
    rows = []
    for line in SEED_MITIGATIONS:
        title = next(i.title for i in SEED_ITEMS if i.id == line.item)
        states = [f"{'✅' if controls[c].effective else '❌'} {c}" for c in line.controls]
        rows.append(
            [title, line.text, f"{line.seed_mark} {line.seed_note}", "; ".join(states) or "none", line.note]
        )
    return rows


def correction_rows(report: Report) -> list[tuple[Correction, list[Verdict]]]:
    return [(c, [report.verdict(e) for e in c.evidence]) for c in CORRECTIONS]


# --- Mermaid ----------------------------------------------------------------------------------


def mermaid_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", value)


def mermaid_text(value: str) -> str:
    return value.replace('"', "#quot;").replace("\n", " ")


def _mermaid_node(element: Element) -> str:
    shape = {
        Kind.EXTERNAL_ENTITY: ('["', '"]'),
        Kind.PROCESS: ('(["', '"])'),
        Kind.DATA_STORE: ('[("', '")]'),
    }
    left, right = shape[element.kind]
    return f"{mermaid_id(element.id)}{left}{mermaid_text(element.title)}{right}"


def to_mermaid(report: Report) -> str:
    model = report.model
    lines = ["flowchart LR"]
    for zone in model.zones:
        lines.append(f'  subgraph {mermaid_id("zone_" + zone.id)}["{mermaid_text(zone.title)}"]')
        lines += [f"    {_mermaid_node(e)}" for e in model.elements if e.zone == zone.id]
        lines.append("  end")
    for flow in model.flows:
        label = mermaid_text(f"{flow.id}: {flow.label}")
        arrow = "-.->" if flow.internal else "-->"
        lines.append(f'  {mermaid_id(flow.source)} {arrow}|"{label}"| {mermaid_id(flow.target)}')
    return "\n".join(lines)


# --- Markdown ---------------------------------------------------------------------------------


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def threat_row(a: ThreatAssessment) -> list[str]:
    t = a.threat
    return [
        t.id,
        t.title,
        t.stride.value,
        t.target,
        t.likelihood.label,
        t.impact.label,
        t.inherent_risk.label,
        f"{MARK[a.status]} {a.status.value}",
        a.residual.label,
        ", ".join(t.atlas) or "—",
        ", ".join(t.owasp) or "—",
        ", ".join(f"{'✅' if c.effective else '❌'} {c.control.id}" for c in a.controls) or "—",
    ]


THREAT_HEADER = [
    "id",
    "threat",
    "STRIDE",
    "element / flow",
    "likelihood",
    "impact",
    "inherent risk",
    "status",
    "residual risk",
    "ATLAS",
    "OWASP ML",
    "controls",
]


def to_markdown(report: Report) -> str:
    ctx, model, assessment = report.context, report.model, report.assessment
    out = [
        "# digitguard threat model",
        "",
        f"Generated {ctx.generated_at:%Y-%m-%d %H:%M UTC} by `digitguard threats report` "
        "for the served model "
        f"`{ctx.model_name}` (SHA-256 `{ctx.model_sha256}`), configuration: {ctx.config_source}, "
        f"test results: {ctx.junit_source}.",
        "",
        f"**{summary_line(assessment)}.** Statuses are computed from the evidence below; stale evidence "
        "(another model, or code changed since the test run) counts as missing.",
        "",
        "## Data flow diagram",
        "",
        "Subgraphs are trust zones; every arrow between two of them crosses a trust boundary "
        "(dotted arrows stay inside one zone).",
        "",
        "```mermaid",
        to_mermaid(report),
        "```",
        "",
        "## Trust boundaries",
        "",
        *_md_table(
            ["boundary", "between", "flows crossing it", "what it means"],
            (
                [
                    b.title,
                    " / ".join(b.between),
                    ", ".join(f.id for f in model.flows if b.id in f.crosses) or "—",
                    b.description,
                ]
                for b in model.boundaries
            ),
        ),
        "## Elements",
        "",
        *_md_table(
            ["id", "element", "kind", "zone", "what it is"],
            ([e.id, e.title, e.kind.value, e.zone, e.description] for e in model.elements),
        ),
        "## Data flows",
        "",
        *_md_table(
            ["id", "from", "to", "data", "crosses"],
            (
                [f.id, f.source, f.target, f.label, ", ".join(f.crosses) or f"internal: {f.internal}"]
                for f in model.flows
            ),
        ),
        "## STRIDE per element",
        "",
        "Each cell lists the threats of that category (with their status) or n/a where the category "
        "cannot apply; the reasons are in `src/digitguard/threatmodel/catalog.py`.",
        "",
        *_md_table(
            ["element", *(s.title for s in Stride)],
            ([e.title, *stride_cells(report, e.id, Stride, e.not_applicable)] for e in model.elements),
        ),
        "## STRIDE per interaction",
        "",
        *_md_table(
            ["flow", "from → to", *(s.title for s in Stride)],
            (
                [
                    f.id,
                    f"{f.source} → {f.target}",
                    *stride_cells(
                        report,
                        f.id,
                        Stride,
                        {
                            **f.not_applicable,
                            **FLOW_NA,
                        },
                    ),
                ]
                for f in model.flows
            ),
        ),
        "## Risk matrix",
        "",
        *_md_matrix(report, residual=False),
        *_md_matrix(report, residual=True),
        "## Threats",
        "",
        *_md_table(THREAT_HEADER, (threat_row(a) for a in assessment.threats)),
        "## Open gaps",
        "",
        *(
            f"- **{a.threat.id}** ({a.status.value}, residual {a.residual.label}): {a.threat.title}"
            " — missing: " + ", ".join(c.control.id for c in a.controls if not c.effective)
            for a in assessment.gaps()
        ),
        "",
        "## Accepted risks",
        "",
        *(
            f"- **{a.threat.id}** {a.threat.title}: accepted by {a.threat.acceptance.by} until "
            f"{a.threat.acceptance.until}: {a.threat.acceptance.reason}"
            for a in assessment.threats
            if a.threat.acceptance is not None
        ),
        "",
        "## Controls and evidence",
        "",
        *_md_table(["control", "effective", "evidence", "kind", "state", "detail"], _control_rows(report)),
        *_md_seeds(report),
        "## Taxonomy",
        "",
        *_md_table(["ATLAS technique", "name"], ([f"[{k}]({ATLAS_URL}{k})", v] for k, v in ATLAS.items())),
        *_md_table(["OWASP ML Top 10", "name"], ([k, v] for k, v in OWASP_ML.items())),
    ]
    return "\n".join(out) + "\n"


def _md_matrix(report: Report, residual: bool) -> list[str]:
    cells = matrix_counts(report, residual)
    title = "After controls (residual)" if residual else "Before controls (inherent)"
    rows = [
        [
            f"likelihood {li.label}",
            *(
                f"{len(cells[(li, im)])} ({risk(li, im).label})"
                if cells[(li, im)]
                else f"· ({risk(li, im).label})"
                for im in IMPACTS
            ),
        ]
        for li in reversed(LIKELIHOODS)
    ]
    return [
        f"**{title}** — number of threats (risk level of the cell):",
        "",
        *_md_table(["", *(f"impact {im.label}" for im in IMPACTS)], rows),
    ]


def _control_rows(report: Report) -> list[list[str]]:
    rows = []
    seen: set[str] = set()
    for a in report.assessment.threats:
        for c in a.controls:
            if c.control.id in seen:
                continue
            seen.add(c.control.id)
            for evidence, verdict in c.verdicts:
                rows.append(
                    [
                        f"{c.control.id}: {c.control.title}",
                        "yes" if c.effective else "no",
                        evidence_text(evidence),
                        evidence_kind(evidence),
                        f"{STATE_MARK[verdict.state]} {verdict.state.value}",
                        verdict.detail,
                    ]
                )
    return rows


def _md_seeds(report: Report) -> list[str]:
    out = [
        "## The seed documents, regenerated with measured numbers",
        "",
        f"Seed 001 (`{SEED_FILES['001']}`): its risk matrix, checked against its own ratings and next to "
        "the threats that now stand for each row.",
        "",
        *_md_table(
            ["seed threat", "seed's rating", "matrix-consistent", "seed's status", "model's threats", "now"],
            seed_rows(report),
        ),
        "Seed 001's mitigation checklists, each line with the control that stands for it and whether its "
        "evidence passes today:",
        "",
        *_md_table(
            ["seed threat", "mitigation", "seed said", "digitguard control (measured)", "note"],
            mitigation_rows(report),
        ),
        f"Seed 000 (`{SEED_FILES['000']}`): its STRIDE-per-element marks (red = high, orange = medium, "
        "green = low) and the model's threats for them:",
        "",
        *_md_table(
            ["element", "STRIDE", "seed threat", "seed's mark", "model: inherent → status, residual"],
            seed000_rows(report),
        ),
        "### Corrections",
        "",
    ]
    for correction, judged in correction_rows(report):
        shown = "; ".join(f"{STATE_MARK[v.state]} {v.detail}" for v in judged)
        out.append(
            f"- **{correction.verdict}** (seed {correction.document}) — “{correction.claim}” "
            f"{correction.truth}" + (f" Evidence: {shown}." if shown else "")
        )
    return [*out, ""]


# --- HTML -------------------------------------------------------------------------------------

E_ = html.escape


def _html_table(header: list[str], rows: Iterable[list[str]], css: str = "keys") -> str:
    head = "".join(f"<th>{E_(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{E_(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def to_html_fragment(report: Report) -> str:
    """The report's body: safe to embed in a page under a strict CSP (no script, no style)."""
    ctx, model, assessment = report.context, report.model, report.assessment
    parts = [
        "<h2>digitguard threat model</h2>",
        f"<p>Generated {E_(f'{ctx.generated_at:%Y-%m-%d %H:%M UTC}')} for the served model "
        f"<code>{E_(str(ctx.model_name))}</code> (SHA-256 <code>{E_(str(ctx.model_sha256))}</code>); "
        f"configuration: {E_(ctx.config_source)}; test results: {E_(ctx.junit_source)}.</p>",
        f"<p><strong>{E_(summary_line(assessment))}.</strong></p>",
        "<h3>Data flow diagram</h3>",
        to_svg(report),
        "<details><summary>Mermaid source</summary><pre>" + E_(to_mermaid(report)) + "</pre></details>",
        "<h3>Trust boundaries</h3>",
        _html_table(
            ["boundary", "between", "flows crossing it", "what it means"],
            (
                [
                    b.title,
                    " / ".join(b.between),
                    ", ".join(f.id for f in model.flows if b.id in f.crosses) or "—",
                    b.description,
                ]
                for b in model.boundaries
            ),
        ),
        "<h3>STRIDE per element</h3>",
        _html_table(
            ["element", *(s.title for s in Stride)],
            ([e.title, *stride_cells(report, e.id, Stride, e.not_applicable)] for e in model.elements),
        ),
        "<h3>STRIDE per interaction</h3>",
        _html_table(
            ["flow", "from → to", *(s.title for s in Stride)],
            (
                [
                    f.id,
                    f"{f.source} → {f.target}",
                    *stride_cells(
                        report,
                        f.id,
                        Stride,
                        {
                            **f.not_applicable,
                            **FLOW_NA,
                        },
                    ),
                ]
                for f in model.flows
            ),
        ),
        "<h3>Risk matrix</h3>",
        _html_matrix(report, residual=False),
        _html_matrix(report, residual=True),
        "<h3>Threats</h3>",
        _html_table(THREAT_HEADER, (threat_row(a) for a in assessment.threats)),
        "<h3>Open gaps</h3><ul>",
        *(
            f"<li><strong>{E_(a.threat.id)}</strong> ({E_(a.status.value)}, "
            f"residual {E_(a.residual.label)}): "
            f"{E_(a.threat.title)}</li>"
            for a in assessment.gaps()
        ),
        "</ul>",
        "<h3>Controls and evidence</h3>",
        _html_table(["control", "effective", "evidence", "kind", "state", "detail"], _control_rows(report)),
        "<h3>The seed documents, regenerated with measured numbers</h3>",
        _html_table(
            ["seed threat", "seed's rating", "matrix-consistent", "seed's status", "model's threats", "now"],
            ([c.replace("**", "") for c in row] for row in seed_rows(report)),
        ),
        _html_table(
            ["seed threat", "mitigation", "seed said", "digitguard control (measured)", "note"],
            mitigation_rows(report),
        ),
        _html_table(["element", "STRIDE", "seed threat", "seed's mark", "model"], seed000_rows(report)),
        "<h4>Corrections</h4><ul>",
        *(
            f"<li><strong>{E_(c.verdict)}</strong> (seed {E_(c.document)}) — “{E_(c.claim)}” {E_(c.truth)}"
            + "".join(f" [{E_(v.state.value)}: {E_(v.detail)}]" for v in vs)
            + "</li>"
            for c, vs in correction_rows(report)
        ),
        "</ul>",
    ]
    return "\n".join(parts)


def _html_matrix(report: Report, residual: bool) -> str:
    cells = matrix_counts(report, residual)
    title = "After controls (residual)" if residual else "Before controls (inherent)"
    rows = [
        [
            f"likelihood {li.label}",
            *(
                f"{len(cells[(li, im)])} ({risk(li, im).label}): {', '.join(cells[(li, im)])}"
                if cells[(li, im)]
                else f"· ({risk(li, im).label})"
                for im in IMPACTS
            ),
        ]
        for li in reversed(LIKELIHOODS)
    ]
    return f"<p>{E_(title)}</p>" + _html_table(["", *(f"impact {im.label}" for im in IMPACTS)], rows)


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2430}"
    "table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}"
    "th,td{border:1px solid #d1d5db;padding:.3rem .5rem;text-align:left;vertical-align:top}"
)


def to_html(report: Report) -> str:
    """A standalone HTML document (the file ``threats report`` writes)."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>digitguard threat model</title>"
        f"<style>{HTML_STYLE}</style></head><body>\n{to_html_fragment(report)}\n</body></html>\n"
    )


# --- SVG --------------------------------------------------------------------------------------

ZONE_W, ZONE_GAP, BOX_W, BOX_H, BOX_GAP, TOP = 190, 60, 150, 46, 34, 40
FILL = {Kind.EXTERNAL_ENTITY: "#eef2ff", Kind.PROCESS: "#dcfce7", Kind.DATA_STORE: "#fef3c7"}


def layout(report: Report) -> dict[str, tuple[float, float]]:
    """Top-left corner of each element's box: one column per zone, elements stacked."""
    places: dict[str, tuple[float, float]] = {}
    for column, zone in enumerate(report.model.zones):
        x = 20 + column * (ZONE_W + ZONE_GAP) + (ZONE_W - BOX_W) / 2
        for row, element in enumerate(e for e in report.model.elements if e.zone == zone.id):
            places[element.id] = (x, TOP + 30 + row * (BOX_H + BOX_GAP))
    return places


def to_svg(report: Report) -> str:
    model, places = report.model, layout(report)
    rows = max(sum(e.zone == z.id for e in model.elements) for z in model.zones)
    width = 40 + len(model.zones) * (ZONE_W + ZONE_GAP) - ZONE_GAP
    height = TOP + 60 + rows * (BOX_H + BOX_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="digitguard data flow diagram" font-family="sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#475569"/></marker></defs>',
    ]
    for column, zone in enumerate(model.zones):
        left = 20 + column * (ZONE_W + ZONE_GAP)
        parts.append(
            f'<rect x="{left}" y="{TOP}" width="{ZONE_W}" height="{height - TOP - 10}" rx="10" '
            'fill="none" stroke="#dc2626" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{left + ZONE_W / 2}" y="{TOP - 10}" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{E_(zone.title)}</text>'
        )
    for index, flow in enumerate(model.flows):
        parts.append(_svg_flow(places, flow.source, flow.target, f"{index + 1}", bool(flow.internal)))
    for element in model.elements:
        x, y = places[element.id]
        rx = {Kind.EXTERNAL_ENTITY: 2, Kind.PROCESS: 23, Kind.DATA_STORE: 8}[element.kind]
        parts.append(
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{rx}" '
            f'fill="{FILL[element.kind]}" stroke="#334155"/>'
        )
        for line_no, line in enumerate(_wrap(element.title, 24)):
            parts.append(
                f'<text x="{x + BOX_W / 2}" y="{y + 19 + line_no * 14}" text-anchor="middle" '
                f'font-size="11">{E_(line)}</text>'
            )
    parts.append("</svg>")
    legend = "; ".join(f"{i + 1}: {f.id} ({f.label})" for i, f in enumerate(model.flows))
    return "\n".join(parts) + f'\n<p class="sub">Flows — {E_(legend)}.</p>'


def _svg_flow(
    places: Mapping[str, tuple[float, float]], source: str, target: str, label: str, internal: bool
) -> str:
    (sx, sy), (tx, ty) = places[source], places[target]
    if abs(sx - tx) < 1:  # same column: route along the side
        x1, y1, x2, y2 = sx + BOX_W, sy + BOX_H / 2, tx + BOX_W, ty + BOX_H / 2
    elif sx < tx:
        x1, y1, x2, y2 = sx + BOX_W, sy + BOX_H / 2, tx, ty + BOX_H / 2
    else:
        x1, y1, x2, y2 = sx, sy + BOX_H / 2, tx + BOX_W, ty + BOX_H / 2
    offset = 6 if source < target else -6  # two flows between the same pair stay apart
    y1, y2 = y1 + offset, y2 + offset
    dash = ' stroke-dasharray="3 3"' if internal else ""
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    return (
        f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#475569"{dash} '
        f'marker-end="url(#arrow)"/><circle cx="{mx:.0f}" cy="{my:.0f}" r="8" fill="#ffffff" '
        f'stroke="#475569"/><text x="{mx:.0f}" y="{my + 4:.0f}" text-anchor="middle" font-size="9">'
        f"{label}</text>"
    )


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines[:2]
