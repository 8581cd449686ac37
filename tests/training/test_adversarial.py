"""Adversarial training: the objectives, early stopping, a few real steps of each mode, resume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from digitguard.models.artifact import load_verified
from digitguard.training import adversarial
from digitguard.training.adversarial import AdversarialConfigError, AdversarialSettings, early_stop
from digitguard.training.checkpoint import checkpoint_path
from digitguard.training.config import TrainConfig
from digitguard.training.run import best_weights_path, train_model
from tests.conftest import KeyPair
from tests.training.test_run import request


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def batch(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(size, 1, 28, 28, generator=generator), torch.randint(
        0, 10, (size,), generator=generator
    )


class TestPerturbations:
    @pytest.mark.parametrize("find", ["fgsm", "pgd"])
    def test_perturbations_stay_in_the_eps_ball_and_in_pixel_range(self, find: str) -> None:
        model, (x, y) = tiny_model(), batch()
        generator = torch.Generator().manual_seed(0)
        if find == "fgsm":
            adversarial_x = adversarial._fgsm_rs(model, x, y, 0.1, generator)
        else:
            adversarial_x = adversarial._pgd(model, x, y, 0.1, 5, generator)
        assert float((adversarial_x - x).abs().max()) <= 0.1 + 1e-6
        assert float(adversarial_x.min()) >= 0.0 and float(adversarial_x.max()) <= 1.0

    def test_pgd_training_examples_raise_the_loss(self) -> None:
        model, (x, y) = tiny_model(), batch(64)
        clean_loss, _ = adversarial.objective(AdversarialSettings("fgsm-rs", 1e-9), 0)(
            model, x, y, torch.Generator().manual_seed(0)
        )
        adversarial_loss, _ = adversarial.objective(AdversarialSettings("pgd", 0.3, steps=5), 0)(
            model, x, y, torch.Generator().manual_seed(0)
        )
        assert float(adversarial_loss.detach()) > float(clean_loss.detach()) + 0.1

    def test_the_perturbation_is_found_in_eval_mode_and_training_mode_is_restored(self) -> None:
        model = nn.Sequential(nn.Flatten(), nn.Dropout(0.99), nn.Linear(784, 10))
        x, y = batch()
        model.train()
        first = adversarial._pgd(model, x, y, 0.1, 3, torch.Generator().manual_seed(0))
        second = adversarial._pgd(model, x, y, 0.1, 3, torch.Generator().manual_seed(0))
        assert torch.equal(first, second)  # dropout would make the two differ
        assert model.training

    @pytest.mark.parametrize("mode", adversarial.MODES)
    def test_every_mode_gives_a_finite_loss_with_gradients(self, mode: str) -> None:
        model, (x, y) = tiny_model(), batch()
        loss, logits = adversarial.objective(AdversarialSettings(mode, 0.3, steps=2), 0)(
            model, x, y, torch.Generator().manual_seed(0)
        )
        loss.backward()
        assert torch.isfinite(loss) and logits.shape == (16, 10)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


class TestSettings:
    def test_eps_grows_linearly_over_the_ramp(self) -> None:
        settings = AdversarialSettings("pgd", 0.3, eps_ramp_epochs=3)
        assert [round(settings.eps_at(epoch), 6) for epoch in range(5)] == [0.1, 0.2, 0.3, 0.3, 0.3]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"mode": "free"}, "mode must be one of"),
            ({"eps": 0.0}, "ε must be in"),
            ({"eps": 1.5}, "ε must be in"),
            ({"steps": 0}, "steps must be at least 1"),
            ({"trades_beta": 0.0}, "β must be positive"),
        ],
    )
    def test_bad_settings_are_refused_naming_the_rule(self, kwargs: dict, message: str) -> None:
        values = {"mode": "pgd", "eps": 0.3, **kwargs}
        with pytest.raises(AdversarialConfigError, match=message):
            AdversarialSettings(**values)

    def test_a_clean_config_records_no_adversarial_settings(self) -> None:
        assert "eps" not in TrainConfig().to_dict()
        assert TrainConfig(adversarial="pgd").to_dict()["eps"] == 0.3


class TestEarlyStopping:
    def test_a_collapse_stops_at_once_and_names_the_best_epoch(self) -> None:
        decision = early_stop([0.60, 0.80, 0.82, 0.05], patience=3, collapse_drop=0.2)
        assert decision.stop and decision.best_epoch == 2
        assert "catastrophic overfitting" in decision.reason

    def test_no_gain_for_patience_epochs_stops(self) -> None:
        decision = early_stop([0.70, 0.80, 0.79, 0.80, 0.78], patience=3, collapse_drop=0.2)
        assert decision.stop and decision.best_epoch == 1

    def test_steady_progress_goes_on(self) -> None:
        decision = early_stop([0.5, 0.6, 0.7], patience=3, collapse_drop=0.2)
        assert not decision.stop and decision.best_epoch == 2


ADVERSARIAL = TrainConfig(
    epochs=2,
    batch_size=64,
    validation_size=200,
    train_limit=800,
    augment=False,
    seed=3,
    eps=0.3,
    adversarial_steps=2,
    robust_eval_size=64,
    robust_eval_steps=3,
)


class TestAdversarialRuns:
    @pytest.mark.parametrize("mode", adversarial.MODES)
    def test_a_few_steps_of_each_mode_train_and_record_their_settings(
        self, mode: str, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        config = TrainConfig(**{**ADVERSARIAL.__dict__, "adversarial": mode})
        outcome = train_model(request(tmp_path, mnist_dir, trusted_key, config))
        manifest = load_verified(outcome.out, [trusted_key.trust_dir]).manifest
        assert manifest.training["adversarial"] == mode
        assert manifest.training["eps"] == 0.3
        robust = [epoch["robust_validation_accuracy"] for epoch in manifest.training["history"]]
        assert len(robust) == 2 and all(0.0 <= value <= 1.0 for value in robust)
        assert not best_weights_path(outcome.out).exists()

    def test_resume_gives_the_same_weights_as_an_uninterrupted_adversarial_run(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
    ) -> None:
        config = TrainConfig(**{**ADVERSARIAL.__dict__, "adversarial": "fgsm-rs"})
        straight = train_model(request(tmp_path / "a", mnist_dir, trusted_key, config))

        def interrupt_after_first_epoch(*_args) -> None:
            raise KeyboardInterrupt

        interrupted = request(tmp_path / "b", mnist_dir, trusted_key, config)
        with pytest.raises(KeyboardInterrupt):
            train_model(interrupted, on_epoch=interrupt_after_first_epoch)
        assert checkpoint_path(interrupted.out).exists()
        resumed = train_model(request(tmp_path / "b", mnist_dir, trusted_key, config, resume=True))
        assert resumed.manifest is not None and straight.manifest is not None
        assert resumed.manifest.weights_sha256 == straight.manifest.weights_sha256

    def test_the_best_epoch_by_held_out_pgd_accuracy_is_what_ships(
        self, tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        scores = iter([0.9, 0.1])  # epoch 2 "collapses": the model of epoch 1 must be the one written
        monkeypatch.setattr(adversarial, "robust_accuracy", lambda *args, **kwargs: next(scores))
        config = TrainConfig(**{**ADVERSARIAL.__dict__, "adversarial": "fgsm-rs", "epochs": 3})
        first_epoch_weights: dict[str, torch.Tensor] = {}

        def remember_first_epoch(result, _val, _robust) -> None:
            if result.epoch == 0:
                from safetensors.torch import load_file

                first_epoch_weights.update(load_file(best_weights_path(tmp_path / "model")))

        outcome = train_model(
            request(tmp_path, mnist_dir, trusted_key, config), on_epoch=remember_first_epoch
        )
        assert outcome.manifest is not None
        history = outcome.manifest.training["history"]
        assert [epoch["robust_validation_accuracy"] for epoch in history] == [0.9, 0.1]  # stopped early
        shipped = load_verified(outcome.out, [trusted_key.trust_dir]).model.state_dict()
        assert all(torch.equal(shipped[name], weights) for name, weights in first_epoch_weights.items())


def _ddp_rank(rank: int, init_file: str, out_dir: str) -> None:
    """One process of a 2-process gloo group: train a dropout-free model one epoch, save its weights."""
    import torch.distributed as dist

    from digitguard.training.distributed import Cluster
    from digitguard.training.loop import train_epoch

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # both ranks on loopback, whatever the hostname
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    model = tiny_model()
    trained = Cluster(rank, 2).wrap(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images, labels = _uint8_batch()
    train_epoch(trained, optimizer, images, labels, epoch=0, seed=5, batch_size=32, rank=rank, world_size=2)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out_dir}/rank{rank}.safetensors")
    Cluster(rank, 2).leave(trained)  # as `digitguard train` leaves; the rank must then exit
    # Deterministic half of the check (the hang it prevents struck 13 of 40 runs): the
    # reducer is gone before `trained` is freed, so it cannot be what destroys the gloo group.
    assert not hasattr(trained, "reducer")


def _uint8_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return (
        torch.randint(0, 256, (128, 28, 28), dtype=torch.uint8, generator=generator),
        torch.randint(0, 10, (128,), generator=generator),
    )


def _run_ddp_pair(init_file: Path, out_dir: Path, timeout_s: float = 60) -> list[int | None]:
    """Both ranks' exit codes (None: still running after ``timeout_s``, then killed)."""
    context = torch.multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_ddp_rank, args=(rank, str(init_file), str(out_dir))) for rank in (0, 1)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout_s)
        return [process.exitcode for process in processes]
    finally:  # a hung rank must not outlive the test (and keep pytest from exiting)
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)


def test_two_process_data_parallel_training_keeps_replicas_in_sync_and_matches_one_process(
    tmp_path: Path,
) -> None:
    from safetensors.torch import load_file

    from digitguard.training.loop import train_epoch

    # No retry: the hangs once blamed on the rendezvous were a rank deadlocked on its way out,
    # which Cluster.leave now prevents (see its docstring); a rank still alive after 60 s fails.
    assert _run_ddp_pair(tmp_path / "init", tmp_path) == [0, 0]
    rank0, rank1 = (load_file(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1))
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)  # the replicas stayed in sync
    alone = tiny_model()  # the same global batches in one process: the same update, up to rounding
    images, labels = _uint8_batch()
    train_epoch(
        alone, torch.optim.SGD(alone.parameters(), lr=0.1), images, labels, epoch=0, seed=5, batch_size=32
    )
    for name, value in alone.state_dict().items():
        assert torch.allclose(rank0[name], value, atol=1e-5), name


def test_digitguard_train_under_torchrun_with_two_cpu_processes_writes_one_signed_model(
    tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
) -> None:
    import socket
    import subprocess
    import sys

    # An explicit free port: with --master_port 0 the workers were told port 0 and never met
    # (the hang that kept this test out of the suite).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp-model"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "digitguard", "train", "--data-dir", str(mnist_dir), "--out", str(out),
        "--key", str(trusted_key.private), "--epochs", "1", "--limit", "600", "--validation-size", "100",
        "--no-augment", "--quiet", "--adversarial", "fgsm-rs", "--robust-eval-size", "50",
        "--robust-eval-steps", "2",
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("signed model written to") == 1  # rank 0 alone writes and reports
    manifest = load_verified(out, [trusted_key.trust_dir]).manifest
    assert manifest.training["adversarial"] == "fgsm-rs"
