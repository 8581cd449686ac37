"""Real training runs on a few thousand MNIST images from the shared copy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digitguard.errors import HashMismatchError, TrainingError
from digitguard.models.artifact import load_verified
from digitguard.training.checkpoint import checkpoint_path
from digitguard.training.config import TrainConfig
from digitguard.training.run import TrainRequest, train_model
from tests.conftest import KeyPair

SMALL = TrainConfig(epochs=2, batch_size=64, validation_size=200, train_limit=1200, augment=False, seed=3)


def request(
    tmp_path: Path, mnist_dir: Path, key: KeyPair, config: TrainConfig = SMALL, **extra
) -> TrainRequest:
    return TrainRequest(
        config=config,
        data_dir=mnist_dir,
        out=tmp_path / "model",
        signing_key=key.private,
        name="test",
        created_by="tests",
        **extra,
    )


class TestShortRealTraining:
    def test_a_few_thousand_samples_beat_90_percent_on_the_full_test_set(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        config = TrainConfig(epochs=3, batch_size=64, validation_size=500, train_limit=4500, augment=False)
        outcome = train_model(request(tmp_path, mnist_dir, trusted_key, config))
        assert outcome.manifest.metrics["test_accuracy"] > 0.90
        verified = load_verified(outcome.out, [trusted_key.trust_dir])
        assert verified.manifest.data["verified"] is True
        assert verified.manifest.data["files"]["train-images-idx3-ubyte.gz"].startswith("440fcabf")
        assert len(verified.manifest.training["history"]) == 3
        assert not checkpoint_path(outcome.out).exists()


class TestResume:
    def test_resume_after_interruption_gives_the_same_weights_as_an_uninterrupted_run(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        straight = train_model(request(tmp_path / "a", mnist_dir, trusted_key))

        def interrupt_after_first_epoch(result, _val) -> None:
            raise KeyboardInterrupt

        interrupted = request(tmp_path / "b", mnist_dir, trusted_key)
        with pytest.raises(KeyboardInterrupt):
            train_model(interrupted, on_epoch=interrupt_after_first_epoch)
        assert not interrupted.out.exists()
        assert checkpoint_path(interrupted.out).exists()
        resumed = train_model(request(tmp_path / "b", mnist_dir, trusted_key, resume=True))
        assert resumed.resumed_from_epoch == 1
        assert resumed.manifest.weights_sha256 == straight.manifest.weights_sha256

    def test_starting_over_a_checkpoint_without_resume_is_refused(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        checkpoint_path(tmp_path / "model").write_bytes(b"x")
        with pytest.raises(TrainingError, match="pass --resume"):
            train_model(request(tmp_path, mnist_dir, trusted_key))

    def test_resuming_with_a_different_configuration_is_refused(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        def stop(result, _val) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train_model(request(tmp_path, mnist_dir, trusted_key), on_epoch=stop)
        changed = TrainConfig(**{**SMALL.to_dict(), "seed": 4})
        with pytest.raises(TrainingError, match="different training configuration"):
            train_model(request(tmp_path, mnist_dir, trusted_key, changed, resume=True))

    def test_a_corrupt_checkpoint_is_refused(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        checkpoint_path(tmp_path / "model").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
        with pytest.raises(TrainingError, match="checkpoint"):
            train_model(request(tmp_path, mnist_dir, trusted_key, resume=True))


class TestDataChecksComeFirst:
    def test_tampered_data_stops_training_before_anything_is_written(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        import shutil

        data = tmp_path / "data"
        shutil.copytree(mnist_dir, data)
        raw = bytearray((data / "train-labels-idx1-ubyte.gz").read_bytes())
        raw[-20] ^= 1
        (data / "train-labels-idx1-ubyte.gz").write_bytes(bytes(raw))
        req = TrainRequest(
            config=SMALL,
            data_dir=data,
            out=tmp_path / "model",
            signing_key=trusted_key.private,
            name="t",
            created_by="tests",
        )
        with pytest.raises(HashMismatchError):
            train_model(req)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "digitguard", *args]


def _wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else "training exited early"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_cli_run_leaves_no_artifact_and_resumes_to_a_loadable_model(
    tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair, stop_signal: signal.Signals
) -> None:
    out = tmp_path / "model"
    args = [
        "train",
        "--data-dir",
        str(mnist_dir),
        "--out",
        str(out),
        "--key",
        str(trusted_key.private),
        "--epochs",
        "3",
        "--limit",
        "1200",
        "--validation-size",
        "200",
        "--no-augment",
        "--quiet",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(_cli(*args), stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(checkpoint_path(out), process)
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=120)
    if stop_signal == signal.SIGINT and process.returncode != 0:
        assert process.returncode == 130
        assert "--resume" in stderr
    assert not out.exists() or load_verified(out, [trusted_key.trust_dir])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"
    if out.exists():
        return  # the run finished before the signal arrived: nothing to resume
    resumed = subprocess.run(_cli(*args, "--resume"), capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert load_verified(out, [trusted_key.trust_dir]).manifest.training["epochs"] == 3


class TestFineTuning:
    BASIC = Path(__file__).resolve().parents[2] / "models" / "basic"

    def test_a_run_can_start_from_a_verified_model_and_records_which(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        basic = load_verified(self.BASIC)
        config = TrainConfig(
            epochs=1, batch_size=64, validation_size=200, train_limit=600, augment=False,
            learning_rate=1e-5, init_from_sha256=basic.weights_sha256,
        )  # fmt: skip
        outcome = train_model(request(tmp_path, mnist_dir, trusted_key, config, init_from=self.BASIC))
        assert outcome.manifest.training["init_from_sha256"] == basic.weights_sha256
        assert outcome.manifest.metrics["test_accuracy"] > 0.98  # 600 images alone would not get there

    def test_weights_other_than_the_configured_ones_are_refused(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        config = TrainConfig(epochs=1, train_limit=600, validation_size=200, init_from_sha256="0" * 64)
        with pytest.raises(TrainingError, match="not the configured init_from_sha256"):
            train_model(request(tmp_path, mnist_dir, trusted_key, config, init_from=self.BASIC))
        assert not (tmp_path / "model").exists()
