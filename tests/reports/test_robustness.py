"""The robustness report: measured numbers, target checks, stale evidence refused, files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digitguard.cli import main
from digitguard.reports.robustness import (
    Settings,
    StaleEvidenceError,
    measure,
    plots,
    target_checks,
    to_markdown,
)

SMALL = Settings(epsilons=(0.1, 0.3), samples=8, pgd_steps=3, autoattack_samples=0)


def detector_result(sha256: str) -> dict:
    return {
        "model_sha256": sha256,
        "command": "digitguard detector evaluate models/basic",
        "detector": {"threshold": 0.07},
        "clean_test": {"flagged": 0.046, "accuracy": 0.99, "accuracy_of_unflagged": 0.995},
        "attacks": [
            {"attack": "squeeze-aware-pgd", "eps": 0.3, "images": 10, "robust_accuracy": 0.5,
             "flagged_of_fooled": 0.9, "correct_or_flagged": 0.94},
        ],
    }  # fmt: skip


def test_the_report_measures_each_model_and_checks_the_targets(basic, mnist_test) -> None:
    images, labels = mnist_test
    report = measure([basic], images, labels, SMALL, detector_results=[detector_result(basic.weights_sha256)])
    model = report["models"][0]
    assert model["weights_sha256"] == basic.weights_sha256 and model["test_images"] == len(labels)
    assert model["pgd"]["results"][1]["robust_accuracy"] < 0.2  # models/basic is not robust at ε = 0.3
    checks = {c["target"]: c["met"] for c in target_checks(model)}
    assert checks == {"clean": True, "fgsm": False, "pgd": False, "autoattack": False}
    text = to_markdown(report, "digitguard report robustness --out X")
    assert "digitguard report robustness --out X" in text and basic.weights_sha256 in text
    assert "| adaptive attack ε=0.3: correct or flagged | ≥ 95.00% | 94.00% | **no** |" in text
    assert set(plots(report)) == {"pgd-accuracy.png", "coverage.png"}


def test_a_detector_result_for_other_weights_is_refused(basic, mnist_test) -> None:
    images, labels = mnist_test
    with pytest.raises(StaleEvidenceError, match="match none"):
        measure([basic], images, labels, SMALL, detector_results=[detector_result("0" * 64)])


def autoattack_result(sha256: str, accuracy: float = 0.9) -> dict:
    return {
        "attack": "autoattack",
        "model": "models/x",
        "model_sha256": sha256,
        "settings": {"implementation": "standard", "attacks": "APGD-CE, APGD-T (9 targets), Square",
                     "broken_by_APGD-CE": 7, "broken_by_APGD-T": 2, "broken_by_Square": 1},
        "samples": 100,
        "clean_correct": 99,
        "clean_accuracy": 0.99,
        "results": [{"eps": 0.3, "robust_accuracy": accuracy}],
    }  # fmt: skip


def test_an_autoattack_result_measured_elsewhere_stands_in_for_the_report_s_run(basic, mnist_test) -> None:
    images, labels = mnist_test
    settings = Settings(epsilons=(0.3,), samples=8, pgd_steps=3, autoattack_samples=2)
    report = measure(
        [basic], images, labels, settings, autoattack_results=[autoattack_result(basic.weights_sha256)]
    )
    model = report["models"][0]
    assert model["autoattack"]["samples"] == 100 and "model" not in model["autoattack"]
    assert {c["target"]: c["measured"] for c in target_checks(model)}["autoattack"] == 0.9
    text = to_markdown(report, "cmd")
    assert "| AutoAttack (100 images) | 90.00% |" in text
    assert "images broken by each stage: APGD-CE 7, APGD-T 2, Square 1" in text


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (autoattack_result("0" * 64), "match none"),
        ({**autoattack_result("0" * 64), "attack": "pgd"}, "must have attack 'autoattack'"),
        ({**autoattack_result("0" * 64), "results": [{"eps": 0.1, "robust_accuracy": 1.0}]}, "no run at"),
        ({**autoattack_result("0" * 64), "model_sha256": None}, "one distinct model_sha256"),
    ],
)
def test_an_unusable_autoattack_result_is_refused(basic, mnist_test, result, message) -> None:
    images, labels = mnist_test
    with pytest.raises(StaleEvidenceError, match=message):
        measure([basic], images, labels, SMALL, autoattack_results=[result])


def test_an_ensemble_is_reported_with_its_members(basic, mnist_test) -> None:
    images, labels = mnist_test
    report = measure([basic], images, labels, SMALL, ensemble_members=[basic])
    assert [m["weights_sha256"] for m in report["ensemble"]["members"]] == [basic.weights_sha256] * 2
    assert 0 <= report["ensemble"]["calibration"]["ece"] < 1


def test_the_command_writes_markdown_json_and_plots(mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    main(["report", "robustness", "--out", str(out), "--samples", "4", "--steps", "2", "--eps", "0.3",
          "--autoattack-samples", "0", "--data-dir", str(mnist_dir)])  # fmt: skip
    document = json.loads((out / "robustness.json").read_text())
    assert document["command"].startswith("digitguard report robustness --out")
    assert "--samples 4" in document["command"]
    assert (out / "robustness.md").read_text().startswith("# Robustness report")
    assert (out / "coverage.png").read_bytes().startswith(b"\x89PNG")
