"""``digitguard served evaluate`` and ``served calibrate`` on a tiny signed model pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from digitguard.cli import cli
from tests.conftest import KeyPair
from tests.inference.test_decision import gate_of, signed


@pytest.fixture
def pair(tmp_path: Path, trusted_key: KeyPair) -> tuple[Path, Path]:
    primary = signed(tmp_path, trusted_key, "small-cnn", seed=1)
    return primary.path, gate_of(tmp_path, trusted_key, primary).path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


class TestServedEvaluate:
    def test_every_suite_writes_its_evidence_with_both_hashes_and_the_command(
        self, pair, tmp_path: Path, trusted_key: KeyPair, mnist_dir: Path
    ) -> None:
        model, gate = pair
        out = tmp_path / "served"
        code, output = invoke(
            "served", "evaluate", "--model", str(model), "--gate", str(gate), "--first", "4",
            "--junk-per-family", "1", "--attacks", "decision-pgd", "--steps", "2", "--targets", "1",
            "--batch-size", "2", "--out", str(out), "--data-dir", str(mnist_dir),
            "--trust", str(trusted_key.trust_dir),
        )  # fmt: skip
        assert code == 0, output
        for suite in ("clean", "drawing", "junk", "adversarial"):
            document = json.loads((out / f"served-{suite}.json").read_text())
            assert document["suite"] == suite and document["command"].startswith("digitguard ")
            assert document["model_sha256"] and document["gate_sha256"]
        adversarial = json.loads((out / "served-adversarial.json").read_text())
        assert adversarial["summary"]["images"] == 4 and len(adversarial["per_image"]) == 4
        assert adversarial["eps"] == 0.3 and adversarial["attacks"][0]["attack"] == "decision-pgd"
        assert (out / "adversarial-shards" / "results.jsonl").is_file()

    def test_an_unknown_attack_is_refused_before_anything_runs(self, pair, tmp_path: Path) -> None:
        code, output = invoke(
            "served", "evaluate", "--model", str(pair[0]), "--attacks", "nonsense", "--out", str(tmp_path)
        )
        assert code == 2 and "attacks must be among" in output


class TestServedCalibrate:
    def test_a_model_without_a_validation_split_is_refused(self, pair, trusted_key, mnist_dir) -> None:
        model, gate = pair
        code, output = invoke(
            "served", "calibrate", "--model", str(model), "--gate", str(gate),
            "--data-dir", str(mnist_dir), "--trust", str(trusted_key.trust_dir),
        )  # fmt: skip
        assert code == 1 and "no validation split" in output

    def test_it_prints_the_table_and_the_lowest_threshold_within_the_budget(
        self, pair, tmp_path: Path, trusted_key: KeyPair, mnist_dir: Path
    ) -> None:
        from digitguard.models.artifact import load_verified, write_signed_artifact

        verified = load_verified(pair[0], [trusted_key.trust_dir])
        manifest = type(verified.manifest)(
            **{**verified.manifest.__dict__, "training": {"seed": 3, "validation_size": 200}}
        )
        model = write_signed_artifact(tmp_path / "held-out", verified.model, manifest, trusted_key.private)
        gate = pair[1]
        code, output = invoke(
            "served", "calibrate", "--model", str(model), "--gate", str(gate), "--max-wrong", "1.0",
            "--data-dir", str(mnist_dir), "--trust", str(trusted_key.trust_dir),
        )  # fmt: skip
        assert "abstain below 0.30" in output
        assert code == 0 and "lowest threshold with at most" in output
