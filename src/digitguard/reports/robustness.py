"""The robustness report: every number of issue 6 for given models, measured now, with its command.

``measure`` runs the measurements (tensors and verified models in, a JSON-ready dict out);
``to_markdown`` and ``plots`` render that dict. Nothing here reads or writes files: the click
adapter in ``report_cli.py`` does. A detector evaluation made earlier (``digitguard detector
evaluate --out``) can be included instead of re-run; it is refused unless it was measured on
the same model weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure

from digitguard.attacks.art_attacks import AutoAttackLinf
from digitguard.attacks.evaluate import evaluate_attack
from digitguard.attacks.fgsm import FGSM
from digitguard.attacks.pgd import PGD
from digitguard.errors import DigitguardError
from digitguard.inference.uncertainty import (
    Ensemble,
    coverage_accuracy,
    expected_calibration_error,
    probabilities_of,
)
from digitguard.models.artifact import VerifiedModel
from digitguard.outputs import figure_png

COVERAGE_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
# Issue 6's targets for the robust release model at ε = 0.3, and for the detector.
ROBUST_TARGETS = {"clean": 0.99, "fgsm": 0.97, "pgd": 0.93, "autoattack": 0.93}
DETECTOR_TARGETS = {"adaptive_correct_or_flagged": 0.95, "clean_flagged": 0.05}


class StaleEvidenceError(DigitguardError):
    """An included result was measured on other model weights than the ones reported on."""

    exit_code = 2


@dataclass(frozen=True)
class Settings:
    epsilons: tuple[float, ...] = (0.1, 0.2, 0.3)
    samples: int = 1000
    pgd_steps: int = 100
    pgd_restarts: int = 1
    autoattack_samples: int = 100
    autoattack_eps: float = 0.3
    batch_size: int = 500
    seed: int = 0


def measure(
    models: Sequence[VerifiedModel],
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: Settings,
    ensemble_members: Sequence[VerifiedModel] = (),
    detector_results: Sequence[dict[str, Any]] = (),
    autoattack_results: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Clean accuracy, FGSM, PGD and AutoAttack per model; calibration and coverage; detectors.

    ``autoattack_results`` (``digitguard attack --attack autoattack`` result files) stand in for
    the AutoAttack run of the model they were measured on — e.g. a full-size run made elsewhere.
    """
    report: dict[str, Any] = {"settings": settings.__dict__, "models": []}
    detectors = _by_model(detector_results, "detector")
    autoattacks = _by_model([_checked_autoattack(r, settings) for r in autoattack_results], "AutoAttack")
    for verified in models:
        included = (
            detectors.pop(verified.weights_sha256, None),
            autoattacks.pop(verified.weights_sha256, None),
        )
        report["models"].append(_measure_model(verified, images, labels, settings, *included))
    for kind, left in (("detector", detectors), ("AutoAttack", autoattacks)):
        if left:
            raise StaleEvidenceError(
                f"{kind} results for weights {sorted(left)} match none of the reported models"
            )
    if ensemble_members:
        members = [models[0], *ensemble_members]
        ensemble = Ensemble([member.model.eval() for member in members])
        report["ensemble"] = {
            "members": [{"model": str(m.path), "weights_sha256": m.weights_sha256} for m in members],
            **_uncertainty(ensemble, images, labels),
        }
    return report


def _by_model(results: Sequence[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    by_hash: dict[str, dict[str, Any]] = {}
    for result in results:
        weights = result.get("model_sha256")
        if not isinstance(weights, str) or weights in by_hash:
            raise StaleEvidenceError(f"{kind} results need one distinct model_sha256 each, got {weights!r}")
        by_hash[weights] = result
    return by_hash


def _checked_autoattack(result: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """An attack result usable in place of the report's own AutoAttack run, or a clear refusal."""
    if result.get("attack") != "autoattack":
        raise StaleEvidenceError(
            f"an AutoAttack result must have attack 'autoattack', not {result.get('attack')!r}"
        )
    if not any(r.get("eps") == settings.autoattack_eps for r in result.get("results", ())):
        raise StaleEvidenceError(f"the AutoAttack result has no run at ε = {settings.autoattack_eps}")
    return {
        k: v for k, v in result.items() if k not in ("model", "data", "files", "referee", "epsilon_search")
    }


def _measure_model(
    verified: VerifiedModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: Settings,
    detector: dict[str, Any] | None,
    autoattack: dict[str, Any] | None = None,
) -> dict[str, Any]:
    model = verified.model.eval()
    subset_images, subset_labels = images[: settings.samples], labels[: settings.samples]
    fgsm = evaluate_attack(
        model,
        lambda e: FGSM(model, e),
        subset_images,
        subset_labels,
        settings.epsilons,
        batch_size=settings.batch_size,
    )
    pgd = evaluate_attack(
        model,
        lambda e: PGD(model, e, steps=settings.pgd_steps, restarts=settings.pgd_restarts, seed=settings.seed),
        subset_images,
        subset_labels,
        settings.epsilons,
        batch_size=settings.batch_size,
    )
    if autoattack is None and settings.autoattack_samples:
        count = settings.autoattack_samples
        autoattack = evaluate_attack(
            model,
            lambda e: AutoAttackLinf(model, e, batch_size=settings.batch_size, seed=settings.seed),
            images[:count],
            labels[:count],
            [settings.autoattack_eps],
            batch_size=settings.batch_size,
        ).report.to_dict()
    return {
        "model": str(verified.path),
        "name": verified.manifest.name,
        "weights_sha256": verified.weights_sha256,
        "architecture": verified.manifest.architecture,
        "training": {k: v for k, v in verified.manifest.training.items() if k != "history"},
        "fgsm": fgsm.report.to_dict(),
        "pgd": pgd.report.to_dict(),
        "autoattack": autoattack,
        "detector": detector,
        **_uncertainty(model, images, labels),
    }


def _uncertainty(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    probabilities = probabilities_of(model, images)
    accuracy = float((probabilities.argmax(1) == labels).double().mean())
    return {
        "clean_accuracy_full_test": accuracy,
        "test_images": len(labels),
        "calibration": expected_calibration_error(probabilities, labels).to_dict(),
        "coverage_accuracy": coverage_accuracy(probabilities, labels, COVERAGE_THRESHOLDS),
    }


def _at(run: dict[str, Any] | None, eps: float) -> float | None:
    if not run:
        return None
    for result in run["results"]:
        if abs(result["eps"] - eps) < 1e-9:
            return float(result["robust_accuracy"])
    return None


def target_checks(model: dict[str, Any], eps: float = 0.3) -> list[dict[str, Any]]:
    """Issue 6's robust-model targets at ε, each with the measured value and whether it holds."""
    measured = {
        "clean": model["clean_accuracy_full_test"],
        "fgsm": _at(model["fgsm"], eps),
        "pgd": _at(model["pgd"], eps),
        "autoattack": _at(model["autoattack"], eps),
    }
    return [
        {
            "target": name,
            "at_least": bound,
            "measured": measured[name],
            "met": measured[name] is not None and measured[name] >= bound,
        }
        for name, bound in ROBUST_TARGETS.items()
    ]


def detector_checks(detector: dict[str, Any]) -> list[dict[str, Any]]:
    adaptive = next((row for row in detector["attacks"] if row["attack"] == "squeeze-aware-pgd"), None)
    clean = detector["clean_test"]["flagged"]
    checks = [
        {
            "target": "clean test digits flagged",
            "at_most": DETECTOR_TARGETS["clean_flagged"],
            "measured": clean,
            "met": clean <= DETECTOR_TARGETS["clean_flagged"],
        }
    ]
    if adaptive is not None:
        value = adaptive["correct_or_flagged"]
        bound = DETECTOR_TARGETS["adaptive_correct_or_flagged"]
        checks.append(
            {
                "target": f"adaptive attack ε={adaptive['eps']:g}: correct or flagged",
                "at_least": bound,
                "measured": value,
                "met": value >= bound,
            }
        )
    return checks


def _met(check: dict[str, Any]) -> str:
    return "yes" if check["met"] else "**no**"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def to_markdown(report: dict[str, Any], command: str) -> str:
    settings = report["settings"]
    lines = [
        "# Robustness report",
        "",
        f"Generated by `{command}`. L∞ attacks, pixels in [0, 1]; FGSM and PGD on the first "
        f"{settings['samples']} MNIST test images (PGD: {settings['pgd_steps']} steps, "
        f"{settings['pgd_restarts']} restart(s), α = 2.5·ε/steps), AutoAttack (standard: APGD-CE, "
        "APGD-T, Square from ART's attacks; FAB-T left out) on the first "
        f"{settings['autoattack_samples']} at ε = {settings['autoattack_eps']:g} unless a model's row "
        "says otherwise; clean accuracy, calibration and coverage on all 10,000.",
        "",
    ]
    for model in report["models"]:
        lines += _model_section(model, report["settings"])
    if "ensemble" in report:
        ensemble = report["ensemble"]
        lines += ["## Deep ensemble", "", "Members (probabilities averaged):", ""]
        lines += [f"- `{m['model']}` — weights `{m['weights_sha256']}`" for m in ensemble["members"]]
        lines += ["", *_uncertainty_lines(ensemble), ""]
    lines += [
        "![robust accuracy under PGD](pgd-accuracy.png)",
        "",
        "![coverage against accuracy](coverage.png)",
        "",
    ]
    return "\n".join(lines) + "\n"


def _autoattack_lines(autoattack: dict[str, Any] | None) -> list[str]:
    if not autoattack:
        return []
    used = autoattack["settings"]
    broken = {k.removeprefix("broken_by_"): v for k, v in used.items() if k.startswith("broken_by_")}
    stages = ", ".join(f"{stage} {count}" for stage, count in broken.items())
    return [
        f"AutoAttack: {used.get('implementation')} ({used.get('attacks')})"
        + (f"; images broken by each stage: {stages}" if stages else "")
        + f"; {autoattack['clean_correct']} of {autoattack['samples']} classified correctly before.",
        "",
    ]


def _model_section(model: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    lines = [
        f"## `{model['model']}` ({model['architecture']})",
        "",
        f"Weights SHA-256 `{model['weights_sha256']}`. Training: "
        + ", ".join(f"{k}={v}" for k, v in sorted(model["training"].items()) if v is not None),
        "",
        f"Clean accuracy on all {model['test_images']} test images: "
        f"**{_pct(model['clean_accuracy_full_test'])}**.",
        "",
        "| attack | " + " | ".join(f"ε={eps:g}" for eps in settings["epsilons"]) + " |",
        "|---|" + "---|" * len(settings["epsilons"]),
        "| FGSM | " + " | ".join(_pct(_at(model["fgsm"], eps)) for eps in settings["epsilons"]) + " |",
        "| PGD | " + " | ".join(_pct(_at(model["pgd"], eps)) for eps in settings["epsilons"]) + " |",
    ]
    if model["autoattack"]:
        lines.append(
            f"| AutoAttack ({model['autoattack']['samples']} images) | "
            + " | ".join(_pct(_at(model["autoattack"], eps)) for eps in settings["epsilons"])
            + " |"
        )
    lines += ["", *_autoattack_lines(model["autoattack"])]
    lines += [
        "Issue 6's robust-model targets at ε = 0.3:",
        "",
        "| target | at least | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c['target']} | {_pct(c['at_least'])} | {_pct(c['measured'])} | {_met(c)} |"
        for c in target_checks(model)
    ]
    lines += ["", *_uncertainty_lines(model), ""]
    if model["detector"]:
        lines += _detector_lines(model["detector"])
    return lines


def _uncertainty_lines(entry: dict[str, Any]) -> list[str]:
    lines = [
        f"Expected calibration error (15 bins, {entry['test_images']} test images): "
        f"**{entry['calibration']['ece']:.4f}**.",
        "",
        "| abstain below | answered | accuracy of the answered |",
        "|---|---|---|",
    ]
    lines += [
        f"| {p['threshold']:g} | {_pct(p['coverage'])} | {_pct(p['accuracy'])} |"
        for p in entry["coverage_accuracy"]
    ]
    return lines


def _detector_lines(detector: dict[str, Any]) -> list[str]:
    clean = detector["clean_test"]
    lines = [
        f"### Feature-squeezing detector (threshold {detector['detector']['threshold']:.6f})",
        "",
        f"From `{detector['command']}`. Clean test digits flagged: **{_pct(clean['flagged'])}** "
        f"(accuracy of the unflagged {_pct(clean['accuracy_of_unflagged'])}).",
        "",
        "| attack | images | robust accuracy | TPR on fooled | correct or flagged |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['attack']} ε={row['eps']:g} | {row['images']} | {_pct(row['robust_accuracy'])} | "
        f"{_pct(row['flagged_of_fooled'])} | {_pct(row['correct_or_flagged'])} |"
        for row in detector["attacks"]
    ]
    lines += ["", "| detector target | bound | measured | met |", "|---|---|---|---|"]
    for check in detector_checks(detector):
        bound = f"≥ {_pct(check['at_least'])}" if "at_least" in check else f"≤ {_pct(check['at_most'])}"
        lines.append(f"| {check['target']} | {bound} | {_pct(check['measured'])} | {_met(check)} |")
    return [*lines, ""]


def plots(report: dict[str, Any]) -> dict[str, bytes]:
    """``pgd-accuracy.png`` (robust accuracy against ε per model) and ``coverage.png``."""
    return {"pgd-accuracy.png": _pgd_plot(report), "coverage.png": _coverage_plot(report)}


def _pgd_plot(report: dict[str, Any]) -> bytes:
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    for model in report["models"]:
        pgd = model["pgd"]
        axes.plot(
            [0.0] + [r["eps"] for r in pgd["results"]],
            [100 * pgd["clean_accuracy"]] + [100 * r["robust_accuracy"] for r in pgd["results"]],
            marker="o",
            label=model["name"],
        )
    axes.set_xlabel("ε (L∞)")
    axes.set_ylabel("accuracy under PGD (%)")
    axes.set_ylim(0, 105)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure_png(figure)


def _coverage_plot(report: dict[str, Any]) -> bytes:
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    entries = [(m["name"], m) for m in report["models"]] + (
        [("ensemble", report["ensemble"])] if "ensemble" in report else []
    )
    for name, entry in entries:
        curve = entry["coverage_accuracy"]
        axes.plot(
            [100 * p["coverage"] for p in curve], [100 * p["accuracy"] for p in curve], marker="o", label=name
        )
    axes.set_xlabel("answered (%)")
    axes.set_ylabel("accuracy of the answered (%)")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure_png(figure)
