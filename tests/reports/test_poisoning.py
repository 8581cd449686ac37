"""The poisoning report: reading the experiment's results, checking them against issue 7's targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digitguard.cli import main
from digitguard.reports.poisoning import (
    PoisoningReportError,
    checks,
    collect,
    evidence_files,
    plots,
    to_markdown,
)


def _scan(recall: float, false_removal: float, kind: str = "all") -> dict:
    score = {
        "recall": recall,
        "false_removal_rate": false_removal,
        "clean_removed": int(false_removal * 59_400),
    }
    return {"by_method": {"occlusion": 101, "loss": 30}, "score": {kind: score, "all": score}}


def _trigger(accepted: float) -> dict:
    return {
        "false_rejection_rate": 0.01,
        "false_acceptance_rate": accepted,
        "false_acceptance_of_successes": accepted,
        "false_acceptance_of_successes_at_1pct_test_frr": accepted,
    }


@pytest.fixture
def work(tmp_path: Path) -> Path:
    directory = tmp_path / "work"
    documents = {
        "backdoor-p0.json": {"clean_accuracy": 0.9872, "attack_success_rate": 0.0013},
        "backdoor-p100.json": {"clean_accuracy": 0.9873, "attack_success_rate": 0.776},
        "backdoor-p600.json": {"clean_accuracy": 0.9872, "attack_success_rate": 0.997},
        "scan-p100.json": _scan(0.99, 0.0005),
        "scan-p600.json": _scan(0.95, 0.0006),  # misses the 98% recall target
        "backdoor-p100-sanitized.json": {"clean_accuracy": 0.9871, "attack_success_rate": 0.0013},
        "backdoor-p600-sanitized.json": {"clean_accuracy": 0.9900, "attack_success_rate": 0.02},
        "scan-flip1.json": _scan(0.97, 0.0013, kind="label_flip"),
        "trigger-occlusion-p100/trigger-result.json": _trigger(0.003),
        "trigger-strip-p100/trigger-result.json": _trigger(0.9),
    }
    for name, document in documents.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(json.dumps(document))
    return directory


def test_every_result_is_found_by_its_name(work: Path) -> None:
    results = collect(work)
    assert list(results["sweep"]) == [0, 100, 600] and list(results["scans"]) == [100, 600]
    assert list(results["retrained"]) == [100, 600] and list(results["flips"]) == ["flip1"]
    assert sorted(results["triggers"]) == ["occlusion-p100", "strip-p100"]


def test_each_target_is_judged_on_its_measurement(work: Path) -> None:
    verdicts = {check["target"]: check for check in checks(collect(work))}
    assert verdicts["scan recall, 100 poisons ≥ 98%"]["met"] is True
    assert verdicts["scan recall, 600 poisons ≥ 98%"]["met"] is False
    assert verdicts["attack success after sanitising, 600 poisons ≤ 1%"]["met"] is False
    gap = verdicts["clean accuracy after sanitising, 600 poisons, within 0.2 points of the clean model"]
    assert gap["measured"] == pytest.approx(0.0028) and gap["met"] is False
    assert verdicts["flipped labels found (flip1) ≥ 90%"]["met"] is True
    trigger = next(c for c in verdicts.values() if "occlusion-p100" in c["target"])
    assert (
        trigger["met"] is True
        and next(c for c in verdicts.values() if "strip-p100" in c["target"])["met"] is False
    )


def test_a_missing_measurement_is_not_met(work: Path) -> None:
    (work / "scan-p600.json").unlink()
    verdicts = {check["target"]: check for check in checks(collect(work))}
    assert verdicts["scan recall, 600 poisons ≥ 98%"] == {
        "target": "scan recall, 600 poisons ≥ 98%",
        "measured": None,
        "met": False,
    }


def test_a_directory_without_a_sweep_or_with_garbage_is_refused(tmp_path: Path, work: Path) -> None:
    with pytest.raises(PoisoningReportError, match=r"no backdoor-pN\.json"):
        collect(tmp_path)
    (work / "scan-p100.json").write_text("{not json")
    with pytest.raises(PoisoningReportError, match=r"scan-p100\.json: unreadable"):
        collect(work)


def test_the_markdown_plot_and_evidence_files_render(work: Path) -> None:
    results = collect(work)
    report = {"work": str(work), **results, "checks": checks(results)}
    markdown = to_markdown(report, "digitguard report poisoning --out x")
    assert "| 100 | 98.73% | 77.60% |" in markdown and "| occlusion-p100 | 1.00% | 0.30% |" in markdown
    assert plots(report)["attack-success.png"].startswith(b"\x89PNG")
    assert {"backdoor-p100.json", "scan-p100.json", "scan-flip1.json", "trigger-strip-p100.json"} <= set(
        evidence_files(report)
    )


def test_the_command_measures_the_served_model_and_writes_the_evidence(
    work: Path, tmp_path: Path, mnist_dir: Path
) -> None:
    out = tmp_path / "report"
    try:
        main(["report", "poisoning", "--out", str(out), "--work", str(work), "--data-dir", str(mnist_dir)])
    except SystemExit as exit_:
        assert not exit_.code
    served = json.loads((out / "served-backdoor.json").read_text())
    assert served["model"] == "models/robust-drawing" and served["attack_success_rate"] < 0.05
    report = json.loads((out / "poisoning.json").read_text())
    assert report["command"].startswith("digitguard report poisoning --out")
    assert any(c["target"].startswith("served model") and c["met"] for c in report["checks"])
    assert (out / "poisoning.md").read_text().count("## ") >= 4 and (out / "backdoor-p100.json").is_file()
