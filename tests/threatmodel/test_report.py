"""The report renders: valid Mermaid flowchart lines, well-formed HTML and SVG, every table present."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from digitguard.threatmodel.catalog import MODEL
from digitguard.threatmodel.report import (
    Report,
    evaluate,
    to_html,
    to_html_fragment,
    to_markdown,
    to_mermaid,
    to_svg,
)
from digitguard.web import DEFAULTS
from digitguard.web.limits import LIMIT_DEFAULTS


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return evaluate(
        config={**DEFAULTS, **LIMIT_DEFAULTS},
        model_sha256="f" * 64,
        model_name="basic",
        config_source="test",
        junit_path=tmp_path_factory.mktemp("none") / "junit.xml",
    )


# The subset of Mermaid's flowchart grammar the report uses, line by line.
NODE_ID = r"[A-Za-z][A-Za-z0-9_]*"
LABEL = r'"[^"\n]*"'
MERMAID_LINE = re.compile(
    "|".join(
        [
            r"flowchart (LR|TB|TD|RL|BT)",
            rf"  subgraph {NODE_ID}\[{LABEL}\]",
            r"  end",
            rf"    {NODE_ID}(\[{LABEL}\]|\(\[{LABEL}\]\)|\[\({LABEL}\)\])",
            rf"  {NODE_ID} (-->|-\.->)\|{LABEL}\| {NODE_ID}",
        ]
    )
)


class TestMermaid:
    def test_every_line_is_flowchart_syntax(self, report: Report) -> None:
        lines = to_mermaid(report).splitlines()
        assert lines[0] == "flowchart LR"
        assert [line for line in lines if not MERMAID_LINE.fullmatch(line)] == []

    def test_subgraphs_are_balanced_and_every_element_and_flow_is_drawn(self, report: Report) -> None:
        text = to_mermaid(report)
        assert text.count("subgraph ") == text.count("\n  end") == len(MODEL.zones)
        declared = set(re.findall(rf"^    ({NODE_ID})[\[(]", text, re.MULTILINE))
        edges = re.findall(rf"^  ({NODE_ID}) -\.?->\|{LABEL}\| ({NODE_ID})$", text, re.MULTILINE)
        assert declared == {e.id.replace("-", "_") for e in MODEL.elements}
        assert len(edges) == len(MODEL.flows) and {n for edge in edges for n in edge} <= declared

    def test_the_markdown_embeds_it_in_a_mermaid_block(self, report: Report) -> None:
        markdown = to_markdown(report)
        assert "```mermaid\n" + to_mermaid(report) + "\n```" in markdown


class _Balance(HTMLParser):
    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "path", "circle", "line", "rect"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}

    def handle_endtag(self, tag) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


class TestHtml:
    def test_the_document_is_well_formed(self, report: Report) -> None:
        parser = _Balance()
        parser.feed(to_html(report))
        parser.close()
        assert parser.problems == [] and parser.stack == []

    def test_the_svg_is_well_formed_xml_with_a_box_per_element(self, report: Report) -> None:
        svg = to_svg(report).split("\n<p")[0]
        root = ET.fromstring(svg)
        ns = "{http://www.w3.org/2000/svg}"
        assert root.tag == f"{ns}svg"
        boxes = [r for r in root.iter(f"{ns}rect") if r.get("stroke") == "#334155"]
        assert len(boxes) == len(MODEL.elements)
        assert len(list(root.iter(f"{ns}line"))) == len(MODEL.flows)

    def test_the_fragment_has_no_script_style_or_event_handlers(self, report: Report) -> None:
        parser = _Balance()
        parser.feed(to_html_fragment(report))
        assert not parser.tags & {"script", "style", "iframe", "object"}
        assert not {a for a in parser.attributes if a == "style" or a.startswith("on")}

    def test_every_section_is_present(self, report: Report) -> None:
        markdown = to_markdown(report)
        for heading in (
            "## Data flow diagram",
            "## Trust boundaries",
            "## STRIDE per element",
            "## STRIDE per interaction",
            "## Risk matrix",
            "## Threats",
            "## Open gaps",
            "## Accepted risks",
            "## Controls and evidence",
            "## The seed documents, regenerated with measured numbers",
            "### Corrections",
        ):
            assert heading in markdown
        assert "**Before controls (inherent)**" in markdown and "**After controls (residual)**" in markdown

    def test_the_seed_corrections_are_rendered(self, report: Report) -> None:
        markdown = to_markdown(report)
        assert "PyTorch 2.6" in markdown and "99.45%" in markdown
        assert "| Lack of decision auditability | high × medium → medium | **no** |" in markdown

    def test_values_are_escaped(self, report: Report, tmp_path: Path) -> None:
        hostile = evaluate(
            config={**DEFAULTS, **LIMIT_DEFAULTS},
            model_sha256="<script>x</script>",
            model_name="<b>m</b>",
            config_source="<i>",
            junit_path=tmp_path / "none.xml",
        )
        fragment = to_html_fragment(hostile)
        assert "<script>" not in fragment and "&lt;script&gt;" in fragment
