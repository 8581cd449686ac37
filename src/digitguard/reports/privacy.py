"""The privacy report: membership inference, differential privacy and extraction, from result files.

``digitguard report privacy`` gathers what the commands measured — ``privacy audit`` and
``privacy lira`` results per model, the DP record in each model's signed manifest, the
``redteam extract`` results — checks each against the issue's targets and renders Markdown,
JSON and a plot. A result measured on other weights than the model's current ones is reported
as stale and fails its check: nothing is carried over from another model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

AUC_TARGET, TPR_TARGET = 0.55, 0.005
DP_ACCURACY_TARGET, DP_EPSILON_TARGET = 0.985, 3.0
EXTRACTION_FLAG_TARGET = 500
ATTACKS = {"loss-threshold": "membership-result.json", "lira": "lira-result.json"}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def model_entry(name: str, model_sha256: str, manifest: Any, audits: Path) -> dict[str, Any]:
    """One model: its DP record and each attack's result (or why there is none)."""
    entry: dict[str, Any] = {
        "model": name,
        "model_sha256": model_sha256,
        "test_accuracy": manifest.metrics.get("test_accuracy"),
        "privacy": manifest.training.get("privacy"),
        "attacks": {},
    }
    for attack, filename in ATTACKS.items():
        result = _read(audits / name / filename)
        if result is None:
            entry["attacks"][attack] = {"status": "missing", "file": str(audits / name / filename)}
        elif result.get("model_sha256") != model_sha256:
            entry["attacks"][attack] = {"status": "stale", "measured_on": result.get("model_sha256")}
        else:
            entry["attacks"][attack] = {
                "status": "measured",
                "auc": result["auc"],
                "tpr_at_0_1pct_fpr": result["tpr_at_0_1pct_fpr"],
                "members": result.get("members", result.get("online", {}).get("members")),
                "command": result.get("command"),
            }
    return entry


def extraction_entries(root: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(root.glob("*/extraction-result.json")):
        result = _read(path)
        if result is None:
            continue
        last = result["rounds"][-1] if result.get("rounds") else {}
        entries.append(
            {
                "run": path.parent.name,
                "model_sha256": result.get("model_sha256"),
                "refused_at": result.get("refused_at"),
                "refusal": result.get("refusal"),
                "queries": last.get("queries"),
                "substitute_accuracy": last.get("substitute_accuracy"),
                "agreement": last.get("agreement"),
                "transfer_success": last.get("transfer_success"),
                "command": result.get("command"),
            }
        )
    return entries


def replay_entries(root: Path) -> list[dict[str, Any]]:
    """``redteam replay --out`` results: an ordinary user's test-set replay through the API."""
    found = []
    for path in sorted(root.glob("*/replay-result.json")):
        result = _read(path)
        if result is not None:
            found.append({"run": path.parent.name, **result})
    return found


def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for model in report["models"]:
        for attack, result in model["attacks"].items():
            measured = result["status"] == "measured"
            out.append(
                {
                    "check": f"{model['model']}: {attack} AUC ≤ {AUC_TARGET} and TPR at 0.1% FPR ≤ 0.5%",
                    "measured": (
                        f"AUC {result['auc']:.4f}, TPR {result['tpr_at_0_1pct_fpr']:.2%}"
                        if measured
                        else result["status"]
                    ),
                    "met": measured
                    and result["auc"] <= AUC_TARGET
                    and result["tpr_at_0_1pct_fpr"] <= TPR_TARGET,
                }
            )
        privacy = model["privacy"]
        if privacy:
            accuracy = model["test_accuracy"]
            out.append(
                {
                    "check": f"{model['model']}: test accuracy ≥ 98.5% at ε ≤ 3, δ = 1e-5",
                    "measured": f"{accuracy:.2%} at ε = {privacy['epsilon']}, δ = {privacy['delta']:g}",
                    "met": accuracy >= DP_ACCURACY_TARGET
                    and privacy["epsilon"] <= DP_EPSILON_TARGET
                    and privacy["delta"] <= 1e-5,
                }
            )
    for run in report["extraction"]:
        if run["refusal"] == "extraction_suspected" or run["run"] == "jacobian":
            refused = run["refused_at"]
            out.append(
                {
                    "check": f"extraction ({run['run']}) flagged before {EXTRACTION_FLAG_TARGET} queries",
                    "measured": f"refused at query {refused} ({run['refusal']})"
                    if refused
                    else "never refused",
                    "met": refused is not None
                    and refused <= EXTRACTION_FLAG_TARGET
                    and run["refusal"] == "extraction_suspected",
                }
            )
    for run in report.get("replay", []):
        out.append(
            {
                "check": f"replaying the test set as an ordinary user ({run['run']}) raises no alarm",
                "measured": f"{run['answered']} of {run['sent']} answered, refusal {run['refusal']}",
                "met": run["refusal"] is None and run["answered"] == run["sent"],
            }
        )
    return out


def to_markdown(report: dict[str, Any], command: str) -> str:
    lines = [
        "# Privacy and model theft — measured",
        "",
        f"Written by `{command}` from the result files named below; every figure comes from one.",
        "",
        "## Membership inference",
        "",
        "| model | weights | test accuracy | DP | attack | AUC | TPR at 0.1% FPR | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in report["models"]:
        privacy = model["privacy"]
        dp = f"ε = {privacy['epsilon']}, δ = {privacy['delta']:g}" if privacy else "no"
        for attack, result in model["attacks"].items():
            if result["status"] == "measured":
                figures = f"{result['auc']:.4f} | {result['tpr_at_0_1pct_fpr']:.2%} | `{result['command']}`"
            else:
                figures = f"{result['status']} | — | —"
            lines.append(
                f"| {model['model']} | `{model['model_sha256'][:12]}…` | {model['test_accuracy']:.2%} | {dp} "
                f"| {attack} | {figures} |"
            )
    lines += ["", "## Differential privacy", ""]
    for model in report["models"]:
        privacy = model["privacy"]
        if privacy:
            lines.append(
                f"- **{model['model']}**: {privacy['mechanism']}; ε = {privacy['epsilon']} at δ = "
                f"{privacy['delta']:g} ({privacy['accountant']} accountant), noise multiplier "
                f"{privacy['noise_multiplier']:.3f}, clipping norm {privacy['max_grad_norm']}, sampling rate "
                f"{privacy['sample_rate']:.4f}, {privacy['steps']} steps over {privacy['training_size']} "
                "training digits; noise multiplier of the feature statistics "
                f"{privacy.get('statistics_noise_multiplier')}."
            )
    if not any(model["privacy"] for model in report["models"]):
        lines.append("No model in this report was trained with differential privacy.")
    lines += [
        "",
        "## Extraction through the prediction API",
        "",
        "| run | served weights | queries | refused at | substitute accuracy | agreement "
        "| transfer success | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in report["extraction"]:
        lines.append(
            f"| {run['run']} | `{str(run['model_sha256'])[:12]}…` | {run['queries']} "
            f"| {run['refused_at'] or 'never'} ({run['refusal'] or '—'}) | {run['substitute_accuracy']} "
            f"| {run['agreement']} | {_percent(run['transfer_success'])} | `{run['command']}` |"
        )
    for run in report.get("replay", []):
        accuracy, refused = run.get("accuracy_of_answers"), run["refusal"] or "never"
        lines.append(
            f"| {run['run']} (replay of the test set) | `{str(run.get('model_sha256'))[:12]}…` "
            f"| {run['sent']} | {refused} | — | {_percent(accuracy)} correct | — | `{run.get('command')}` |"
        )
    lines += [
        "",
        "Substitute accuracy, agreement and transfer against the query count: the `extraction.png` "
        "beside each run's result file; the ROC curves: `membership-roc.png` and `lira-roc.png` "
        "beside each audit's.",
    ]
    lines += ["", "## Targets", "", "| check | measured | met |", "|---|---|---|"]
    lines += [f"| {c['check']} | {c['measured']} | {'✔' if c['met'] else '✗'} |" for c in report["checks"]]
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def plots(report: dict[str, Any]) -> dict[str, bytes]:
    from matplotlib.figure import Figure

    from digitguard.outputs import figure_png

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    labels, aucs = [], []
    for model in report["models"]:
        for attack, result in model["attacks"].items():
            if result["status"] == "measured":
                labels.append(f"{model['model']}\n{attack}")
                aucs.append(result["auc"])
    axes.bar(range(len(aucs)), aucs, color="tab:blue")
    axes.axhline(AUC_TARGET, color="tab:red", linestyle="--", label=f"target ≤ {AUC_TARGET}")
    axes.axhline(0.5, color="grey", linestyle=":", label="chance")
    axes.set_xticks(range(len(labels)), labels, fontsize=7)
    axes.set_ylim(0.4, max([0.6, *aucs]) + 0.02)
    axes.set_ylabel("membership-inference ROC AUC")
    axes.legend()
    figure.tight_layout()
    return {"privacy.png": figure_png(figure)}
