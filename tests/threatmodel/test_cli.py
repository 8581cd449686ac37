"""``digitguard threats report|check|baseline|tests`` on the real model and a fixture test report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from digitguard.cli import cli
from digitguard.threatmodel.catalog import MODEL
from digitguard.threatmodel.evidence import all_nodes, covered_files
from tests.conftest import REPO_ROOT
from tests.threatmodel.conftest import hashes, write_junit


@pytest.fixture
def junit(tmp_path: Path) -> Path:
    return write_junit(
        tmp_path / "junit.xml",
        dict.fromkeys(all_nodes(MODEL), "passed"),
        hashes(REPO_ROOT, covered_files(MODEL)),
    )


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("DIGITGUARD_CONFIG", raising=False)
    return CliRunner()


def test_report_writes_markdown_and_html(runner: CliRunner, junit: Path, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["threats", "report", "--out", str(tmp_path / "out"), "--junit", str(junit)])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "out" / "threat-model.md").read_text()
    assert "```mermaid" in markdown and "for the served model `robust-drawing`" in markdown
    assert (tmp_path / "out" / "threat-model.html").read_text().startswith("<!doctype html>")
    assert "threats:" in result.output


def test_strict_check_fails_while_gaps_remain_and_lists_them(runner: CliRunner, junit: Path) -> None:
    result = runner.invoke(cli, ["threats", "check", "--junit", str(junit)])
    assert result.exit_code == 1
    # Without TLS in the default configuration, sniffing a key on the wire stays a high residual risk.
    assert "gap TOKEN-SNIFFING" in result.output and "needs tls" in result.output


def test_check_against_a_baseline_fails_only_on_regressions(
    runner: CliRunner, junit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = tmp_path / "baseline.json"
    made = runner.invoke(cli, ["threats", "baseline", "--out", str(baseline), "--junit", str(junit)])
    assert made.exit_code == 0, made.output
    assert json.loads(baseline.read_text())["format"] == "digitguard-threat-baseline/1"
    same = runner.invoke(cli, ["threats", "check", "--junit", str(junit), "--baseline", str(baseline)])
    assert same.exit_code == 0, same.output
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"RATELIMIT_ENABLED": False}))
    worse = runner.invoke(
        cli, ["threats", "check", "--junit", str(junit), "--baseline", str(baseline), "--config", str(config)]
    )
    assert worse.exit_code == 1
    assert "REGRESSION MODEL-EXTRACTION" in worse.output


def test_the_environment_is_part_of_the_configuration(
    runner: CliRunner, junit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = tmp_path / "baseline.json"
    runner.invoke(cli, ["threats", "baseline", "--out", str(baseline), "--junit", str(junit)])
    monkeypatch.setenv("DIGITGUARD_AUDIT_SQLITE_SYNCHRONOUS", "NORMAL")
    worse = runner.invoke(cli, ["threats", "check", "--junit", str(junit), "--baseline", str(baseline)])
    assert worse.exit_code == 1 and "REGRESSION AUDIT-LOSS" in worse.output


def test_tests_lists_the_node_ids(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["threats", "tests"])
    assert result.exit_code == 0
    assert "tests/web/test_access.py::TestAuthorizationMatrix" in result.output.splitlines()
