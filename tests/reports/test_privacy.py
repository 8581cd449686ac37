"""The privacy report: results matched to the model's weights, checked against issue 8's targets."""

from __future__ import annotations

import json
from pathlib import Path

from digitguard.models.artifact import load_verified
from digitguard.reports.privacy import checks, extraction_entries, model_entry, to_markdown
from tests.conftest import KeyPair
from tests.test_detector_cli import run


def _write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def _audits(root: Path, name: str, sha: str, loss_auc: float, lira_sha: str) -> None:
    _write(
        root / name / "membership-result.json",
        {"model_sha256": sha, "auc": loss_auc, "tpr_at_0_1pct_fpr": 0.001, "members": 200, "command": "c1"},
    )
    _write(
        root / name / "lira-result.json",
        {"model_sha256": lira_sha, "auc": 0.51, "tpr_at_0_1pct_fpr": 0.0, "command": "c2"},
    )


def test_results_on_other_weights_are_stale_and_fail(
    small_model_dir: Path, trusted_key: KeyPair, tmp_path
) -> None:
    verified = load_verified(small_model_dir, [trusted_key.trust_dir])
    sha = verified.weights_sha256
    _audits(tmp_path, "m", sha, loss_auc=0.52, lira_sha="0" * 64)
    entry = model_entry("m", sha, verified.manifest, tmp_path)
    assert entry["attacks"]["loss-threshold"]["status"] == "measured"
    assert entry["attacks"]["lira"] == {"status": "stale", "measured_on": "0" * 64}
    results = {
        c["check"].split(":")[1].strip().split()[0]: c["met"]
        for c in checks({"models": [entry], "extraction": []})
    }
    assert results == {"loss-threshold": True, "lira": False}


def test_a_leaky_model_and_a_slow_extraction_flag_fail_their_checks(
    small_model_dir: Path, trusted_key: KeyPair, tmp_path: Path
) -> None:
    verified = load_verified(small_model_dir, [trusted_key.trust_dir])
    sha = verified.weights_sha256
    _audits(tmp_path / "audits", "m", sha, loss_auc=0.71, lira_sha=sha)
    rounds = [{"queries": 900, "substitute_accuracy": 0.8, "agreement": 0.8, "transfer_success": 0.7}]
    _write(
        tmp_path / "extraction" / "jacobian" / "extraction-result.json",
        {"refused_at": 900, "refusal": "extraction_suspected", "rounds": rounds, "command": "c3"},
    )
    report = {
        "models": [model_entry("m", sha, verified.manifest, tmp_path / "audits")],
        "extraction": extraction_entries(tmp_path / "extraction"),
    }
    report["checks"] = checks(report)
    met = {c["check"]: c["met"] for c in report["checks"]}
    assert met["m: loss-threshold AUC ≤ 0.55 and TPR at 0.1% FPR ≤ 0.5%"] is False
    assert met["m: lira AUC ≤ 0.55 and TPR at 0.1% FPR ≤ 0.5%"] is True
    assert met["extraction (jacobian) flagged before 500 queries"] is False
    markdown = to_markdown(report, "digitguard report privacy --out x")
    assert "| m | `" in markdown and "0.7100" in markdown and "refused at query 900" in markdown


def test_the_command_writes_markdown_json_and_a_plot(
    small_model_dir: Path, trusted_key: KeyPair, tmp_path: Path
) -> None:
    sha = load_verified(small_model_dir, [trusted_key.trust_dir]).weights_sha256
    _audits(tmp_path / "audits", small_model_dir.name, sha, loss_auc=0.5, lira_sha=sha)
    out = tmp_path / "report"
    args = ["--out", str(out), "--model", str(small_model_dir), "--audits", str(tmp_path / "audits")]
    args += ["--extraction", str(tmp_path / "none"), "--trust", str(trusted_key.trust_dir)]
    assert run("report", "privacy", *args) == 0
    report = json.loads((out / "privacy.json").read_text())
    assert [c["met"] for c in report["checks"]] == [True, True]
    assert (out / "privacy.png").read_bytes().startswith(b"\x89PNG")
    assert "## Membership inference" in (out / "privacy.md").read_text()
