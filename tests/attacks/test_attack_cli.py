"""``digitguard attack``: JSON and files out, clear refusals, and the referee's verdict as the exit status."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

BASIC = REPO_ROOT / "models" / "basic"


run = run_cli


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


class TestAttackCommand:
    def test_json_and_out_give_the_report_both_pictures_and_the_referees_verdict(
        self, mnist_dir: Path, tmp_path: Path, capsys
    ) -> None:
        out = tmp_path / "report"
        args = ["attack", str(BASIC), "--attack", "fgsm", "--eps", "0.1,0.3", "--samples", "20", "--referee"]
        code, stdout, err = run([*args, "--data-dir", str(mnist_dir), "--json", "--out", str(out)], capsys)
        assert code == 0, err
        result = json.loads(stdout)
        assert result["attack"] == "fgsm" and result["samples"] == 20
        assert result["data"] == "MNIST test set, first 20 images"
        assert [row["eps"] for row in result["results"]] == [0.1, 0.3]
        assert (
            result["clean_accuracy"]
            >= result["results"][0]["robust_accuracy"]
            >= result["results"][1]["robust_accuracy"]
        )
        assert result["results"][1]["attack_success_rate"] > 0.5
        assert result["referee"]["agreed"] is True
        assert [row["difference_points"] for row in result["referee"]["comparisons"]] == [0.0, 0.0]
        assert json.loads((out / "fgsm-result.json").read_text()) == result
        width, height = png_size(out / "fgsm-accuracy.png")
        assert width >= 400 and height >= 300
        grid_width, grid_height = png_size(out / "fgsm-examples.png")
        assert grid_width > grid_height  # 8 examples across, clean + 2 budgets down

    def test_pgd_settings_reach_the_attack_and_the_text_report(self, mnist_dir: Path, capsys) -> None:
        args = ["attack", str(BASIC), "--attack", "pgd", "--eps", "0.2", "--steps", "2", "--restarts", "2"]
        code, stdout, err = run(
            [*args, "--samples", "10", "--seed", "5", "--data-dir", str(mnist_dir)], capsys
        )
        assert code == 0, err
        assert "'steps': 2" in stdout and "'restarts': 2" in stdout and "'seed': 5" in stdout
        assert "robust acc." in stdout and "clean accuracy" in stdout

    def test_a_disagreeing_referee_exits_with_status_1_after_reporting(
        self, mnist_dir: Path, monkeypatch, capsys
    ) -> None:
        from digitguard.attacks import registry
        from digitguard.attacks.base import Attack
        from digitguard.attacks.fgsm import FGSM

        class DoesNothing(Attack):
            name = "nothing"

            def __call__(self, images, labels):
                return images.clone()

        monkeypatch.setattr(
            registry,
            "referees_for",
            lambda name, model, options: (lambda e: FGSM(model, e), lambda e: DoesNothing(model, e)),
        )
        args = ["attack", str(BASIC), "--attack", "fgsm", "--eps", "0.2", "--samples", "20", "--referee"]
        code, stdout, err = run([*args, "--data-dir", str(mnist_dir)], capsys)
        assert code == 1
        assert "DISAGREE" in stdout
        assert "error: native fgsm and ART's disagree at ε = 0.2" in err


class TestAttackCommandRefusals:
    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (["--attack", "fgsm", "--eps", "0.1,abc"], "'abc' is not a number"),
            (["--attack", "fgsm", "--eps", "0,0.1"], "must be in (0, 1]"),
            (["--attack", "fgsm", "--eps", "1.5"], "must be in (0, 1]"),
            (["--attack", "deepfool"], "unknown attack 'deepfool'; available: fgsm, pgd, cw, autoattack"),
            (["--attack", "fgsm", "--steps", "10"], "apply to pgd, not to fgsm"),
            (["--attack", "cw", "--referee"], "referee checks the native fgsm and pgd"),
            (["--attack", "pgd", "--restarts", "3", "--no-random-start"], "would all be identical"),
            (["--attack", "fgsm", "--samples", "10001"], "has only 10000 images"),
        ],
    )
    def test_bad_settings_exit_with_status_2_and_a_message(
        self, mnist_dir: Path, extra: list[str], message: str, capsys
    ) -> None:
        code, _, err = run(["attack", str(BASIC), *extra, "--data-dir", str(mnist_dir)], capsys)
        assert code == 2
        assert message in err
        assert "Traceback" not in err

    def test_a_tampered_model_is_refused_with_status_3(self, mnist_dir: Path, tmp_path: Path, capsys) -> None:
        model = tmp_path / "basic"
        shutil.copytree(BASIC, model)
        weights = model / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
        code, _, err = run(["attack", str(model), "--attack", "fgsm", "--data-dir", str(mnist_dir)], capsys)
        assert code == 3
        assert "error:" in err
