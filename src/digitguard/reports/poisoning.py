"""The poisoning report: the BadNets sweep, the scans, retraining, label flips and trigger detection.

Pure functions over the JSON results the experiment scripts leave in one work directory
(``bench/poison_*.sh``, ``make poison-experiment``), plus the served model's own backdoor check
measured when the report is made. :func:`collect` reads the directory's documents by name;
:func:`to_markdown` and :func:`plots` render them, each number beside the issue's target.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from digitguard.outputs import figure_png

SCAN_RECALL_TARGET, SCAN_FALSE_REMOVAL_TARGET = 0.98, 0.005
RETRAIN_ASR_TARGET, RETRAIN_ACCURACY_GAP = 0.01, 0.002
FLIP_RECALL_TARGET, FLIP_FALSE_REMOVAL_TARGET = 0.90, 0.01
TRIGGER_FALSE_ACCEPTANCE_TARGET = 0.01  # STRIP's own MNIST figure: < 1% at 1% false rejection
SERVED_ASR_LIMIT = 0.05


class PoisoningReportError(ValueError):
    """The work directory lacks the results a report needs, or holds unreadable ones."""


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PoisoningReportError(f"{path}: unreadable result: {exc}") from exc
    if not isinstance(document, dict):
        raise PoisoningReportError(f"{path}: not a JSON object")
    return document


def _by_number(work: Path, pattern: str) -> dict[int, dict[str, Any]]:
    """Documents whose file names match ``pattern`` (one integer group), keyed by that integer."""
    found = {}
    for path in sorted(work.glob("*")):
        match = re.fullmatch(pattern, path.name)
        if match:
            found[int(match.group(1))] = _read(path)
    return dict(sorted(found.items()))


def collect(work: Path) -> dict[str, Any]:
    """Everything the experiment scripts wrote into ``work``; refuses a directory without a sweep."""
    sweep = _by_number(work, r"backdoor-p(\d+)\.json")
    if not sweep:
        raise PoisoningReportError(f"{work}: no backdoor-pN.json; run bench/poison_experiment.sh first")
    triggers = {}
    for path in sorted(work.glob("trigger-*-p*/trigger-result.json")):
        match = re.fullmatch(r"trigger-(\w+)-p(\d+)", path.parent.name)
        if match:
            triggers[f"{match.group(1)}-p{match.group(2)}"] = _read(path)
    flips = {path.stem.removeprefix("scan-"): _read(path) for path in sorted(work.glob("scan-flip*.json"))}
    return {
        "sweep": sweep,
        "scans": _by_number(work, r"scan-p(\d+)\.json"),
        "retrained": _by_number(work, r"backdoor-p(\d+)-sanitized\.json"),
        "flips": flips,
        "triggers": triggers,
    }


def _check(target: str, measured: float | None, met: Callable[[float], bool]) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": measured is not None and met(measured)}


def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's targets against what was measured (a missing measurement is not met)."""
    found: list[dict[str, Any]] = []
    for count in (100, 600):
        score = results["scans"].get(count, {}).get("score", {}).get("all", {})
        found.append(
            _check(
                f"scan recall, {count} poisons ≥ 98%", score.get("recall"), lambda v: v >= SCAN_RECALL_TARGET
            )
        )
        found.append(
            _check(
                f"clean samples removed, {count} poisons ≤ 0.5%",
                score.get("false_removal_rate"),
                lambda v: v <= SCAN_FALSE_REMOVAL_TARGET,
            )
        )
        retrained = results["retrained"].get(count, {})
        found.append(
            _check(
                f"attack success after sanitising, {count} poisons ≤ 1%",
                retrained.get("attack_success_rate"),
                lambda v: v <= RETRAIN_ASR_TARGET,
            )
        )
        reference = results["sweep"].get(0, {}).get("clean_accuracy")
        gap = (
            None
            if reference is None or "clean_accuracy" not in retrained
            else retrained["clean_accuracy"] - reference
        )
        found.append(
            _check(
                f"clean accuracy after sanitising, {count} poisons, within 0.2 points of the clean model",
                gap,
                lambda v: abs(v) <= RETRAIN_ACCURACY_GAP,
            )
        )
    for name, scan in results["flips"].items():
        score = scan.get("score", {}).get("label_flip", {})
        found.append(
            _check(
                f"flipped labels found ({name}) ≥ 90%", score.get("recall"), lambda v: v >= FLIP_RECALL_TARGET
            )
        )
        found.append(
            _check(
                f"clean samples removed ({name}) ≤ 1%",
                score.get("false_removal_rate"),
                lambda v: v <= FLIP_FALSE_REMOVAL_TARGET,
            )
        )
    for name, result in results["triggers"].items():
        found.append(
            _check(
                f"triggered digits the backdoor flips, let through by {name} (at 1% false rejection on "
                "the test set) < 1%",
                result.get("false_acceptance_of_successes_at_1pct_test_frr"),
                lambda v: v < TRIGGER_FALSE_ACCEPTANCE_TARGET,
            )
        )
    served = results.get("served")
    if served is not None:
        found.append(
            _check(
                f"served model `{served['model']}`: attack success of the seed's trigger ≤ 5%",
                served["attack_success_rate"],
                lambda v: v <= SERVED_ASR_LIMIT,
            )
        )
    return found


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def to_markdown(report: dict[str, Any], command: str) -> str:
    lines = [
        "# Poisoning report",
        "",
        f"Generated by `{command}` from the results in `{report['work']}` (`make poison-experiment`: "
        "the seed CNN, 2 epochs, no augmentation, no validation hold-out, trigger `square3` → 7).",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for check in report["checks"]:
        measured = check["measured"]
        shown = (
            "—"
            if measured is None
            else (f"{100 * measured:+.2f} points" if "points" in check["target"] else _pct(measured))
        )
        lines.append(f"| {check['target']} | {shown} | {'yes' if check['met'] else '**no**'} |")
    lines += [
        "",
        "## BadNets sweep",
        "",
        "| poisons | clean test accuracy | attack success rate |",
        "|---|---|---|",
    ]
    for count, result in report["sweep"].items():
        lines.append(
            f"| {count} | {_pct(result['clean_accuracy'])} | {_pct(result['attack_success_rate'])} |"
        )
    lines += ["", "![attack success against poisons](attack-success.png)", "", "## Scans and retraining", ""]
    lines += [
        "| set | flagged by method | recall | clean removed | retrained: accuracy | "
        "retrained: attack success |"
    ]
    lines += ["|---|---|---|---|---|---|"]
    for count, scan in report["scans"].items():
        score, retrained = scan["score"]["all"], report["retrained"].get(count, {})
        lines.append(
            f"| {count} poisons | {_methods(scan)} | {_pct(score['recall'])} | {score['clean_removed']} "
            f"({_pct(score['false_removal_rate'])}) | {_pct(retrained.get('clean_accuracy'))} | "
            f"{_pct(retrained.get('attack_success_rate'))} |"
        )
    for name, scan in report["flips"].items():
        score = scan["score"]["label_flip"]
        lines.append(
            f"| {name} (1% labels flipped) | {_methods(scan)} | {_pct(score['recall'])} | "
            f"{score['clean_removed']} ({_pct(score['false_removal_rate'])}) | — | — |"
        )
    lines += [
        "",
        "## Trigger detection at run time",
        "",
        "Each detector calibrated at 1% false rejection on the last 5,000 test digits "
        "(`digitguard trigger calibrate --test-tail 5000`; patch occlusion is the command's default, "
        "STRIP is measured beside it) and evaluated on the first 5,000, clean and with the trigger. "
        "The last column re-sets the threshold at 1% of the evaluated digits themselves.",
        "",
    ]
    lines += [
        "| detector, model | clean flagged | triggered let through | of the backdoor's successes | "
        "at the test set's 1% |"
    ]
    lines += ["|---|---|---|---|---|"]
    for name, result in report["triggers"].items():
        lines.append(
            f"| {name} | {_pct(result['false_rejection_rate'])} | {_pct(result['false_acceptance_rate'])} | "
            f"{_pct(result['false_acceptance_of_successes'])} | "
            f"{_pct(result['false_acceptance_of_successes_at_1pct_test_frr'])} |"
        )
    served = report.get("served")
    if served is not None:
        lines += [
            "",
            "## The served model",
            "",
            f"`{served['model']}` (weights `{served['model_sha256']}`): clean accuracy "
            f"{_pct(served['clean_accuracy'])}, attack success of `{served['trigger']}` → {served['target']} "
            f"{_pct(served['attack_success_rate'])} (measured for this report).",
        ]
    return "\n".join(lines) + "\n"


def _methods(scan: dict[str, Any]) -> str:
    return ", ".join(f"{method} {count}" for method, count in scan.get("by_method", {}).items())


def plots(report: dict[str, Any]) -> dict[str, bytes]:
    """``attack-success.png``: attack success rate and clean accuracy against the number of poisons."""
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    counts = [count for count in report["sweep"] if count > 0]
    axes.plot(
        counts,
        [100 * report["sweep"][c]["attack_success_rate"] for c in counts],
        marker="o",
        label="attack success",
    )
    axes.plot(
        counts,
        [100 * report["sweep"][c]["clean_accuracy"] for c in counts],
        marker="s",
        label="clean accuracy",
    )
    axes.set_xscale("log")
    axes.set_xlabel("poisoned training samples (of 60,000)")
    axes.set_ylabel("%")
    axes.set_ylim(0, 105)
    axes.grid(alpha=0.3)
    axes.legend()
    return {"attack-success.png": figure_png(figure)}


def evidence_files(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The documents the threat model reads, by the file names it looks for under docs/poisoning/."""
    files = {f"backdoor-p{count}.json": result for count, result in report["sweep"].items()}
    files |= {f"scan-p{count}.json": scan for count, scan in report["scans"].items()}
    files |= {f"scan-{name}.json": scan for name, scan in report["flips"].items()}
    files |= {f"trigger-{name}.json": result for name, result in report["triggers"].items()}
    if report.get("served") is not None:
        files["served-backdoor.json"] = report["served"]
    return files
