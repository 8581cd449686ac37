"""DP-SGD: the budget's noise, per-sample clipping, secret randomness and the recorded guarantee."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from digitguard.models.architectures import build_model
from digitguard.models.artifact import load_verified
from digitguard.training.checkpoint import checkpoint_path
from digitguard.training.config import TrainConfig
from digitguard.training.private import (
    STATISTICS_NOISE,
    PrivacyBudget,
    PrivacyConfigError,
    PrivacySchedule,
    PrivateTraining,
    epsilon_spent,
    plan,
    poisson_sample,
    private_statistics,
    sgd_for,
    statistics_noise_for,
)
from digitguard.training.run import train_model
from tests.conftest import KeyPair
from tests.training.test_run import request

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-5, max_grad_norm=0.1)


class TestAccounting:
    def test_the_planned_noise_spends_the_budget_and_no_more(self) -> None:
        schedule = plan(BUDGET, training_size=55_000, batch_size=1024, epochs=30)
        assert schedule.steps_per_epoch == 54
        spent = epsilon_spent(schedule, schedule.total_steps, BUDGET.delta)
        assert 2.95 <= spent <= 3.0
        assert 1.0 < schedule.noise_multiplier < 2.0

    def test_a_smaller_budget_needs_more_noise(self) -> None:
        loose = plan(BUDGET, 55_000, 1024, 30)
        tight = plan(PrivacyBudget(1.0, 1e-5, 0.1), 55_000, 1024, 30)
        assert tight.noise_multiplier > loose.noise_multiplier

    def test_privacy_spent_grows_with_the_steps_taken(self) -> None:
        schedule = plan(BUDGET, 55_000, 1024, 30)
        spent = [epsilon_spent(schedule, steps, 1e-5) for steps in (0, 54, 540, schedule.total_steps)]
        assert spent[0] == 0.0
        assert spent == sorted(spent) and len(set(spent)) == 4

    @pytest.mark.parametrize(
        ("epsilon", "delta", "clip", "rule"),
        [
            (0.0, 1e-5, 0.1, "ε"),
            (float("nan"), 1e-5, 0.1, "ε"),
            (3.0, 1.0, 0.1, "δ"),
            (3.0, 1e-5, 0.0, "clipping"),
        ],
    )
    def test_impossible_budgets_are_refused_by_name(self, epsilon, delta, clip, rule) -> None:
        with pytest.raises(PrivacyConfigError, match=rule):
            PrivacyBudget(epsilon, delta, clip)

    def test_the_feature_statistics_are_paid_for_out_of_the_same_budget(self) -> None:
        alone = plan(BUDGET, 55_000, 1024, 30)
        with_statistics = plan(BUDGET, 55_000, 1024, 30, statistics_noise=STATISTICS_NOISE)
        assert with_statistics.noise_multiplier > alone.noise_multiplier
        assert 2.95 <= epsilon_spent(with_statistics, with_statistics.total_steps, 1e-5) <= 3.0
        assert epsilon_spent(with_statistics, 0, 1e-5) > 0  # the statistics alone cost something
        with pytest.raises(PrivacyConfigError, match="cannot be met"):
            plan(PrivacyBudget(0.01, 1e-5, 0.1), 55_000, 1024, 30, statistics_noise=0.5)

    def test_a_batch_as_large_as_the_data_is_refused(self) -> None:
        with pytest.raises(PrivacyConfigError, match="smaller than"):
            plan(BUDGET, training_size=100, batch_size=100, epochs=1)


def test_poisson_batches_vary_in_size_around_the_expected_one() -> None:
    generator = torch.Generator().manual_seed(0)
    sizes = [len(poisson_sample(10_000, 0.05, generator)) for _ in range(200)]
    assert 490 < sum(sizes) / len(sizes) < 510
    assert len(set(sizes)) > 20  # not a fixed-size batch


class TestPrivateStatistics:
    def test_without_noise_they_are_the_clipped_mean_and_variance(self) -> None:
        maps = torch.rand(500, 3, 2, 2, generator=torch.Generator().manual_seed(0)) * 0.01
        mean, var = private_statistics(maps, (10.0, 10.0), noise=0.0, generator=torch.Generator())
        assert torch.allclose(mean, maps.mean((0, 2, 3)), atol=1e-7)
        assert torch.allclose(var, maps.var((0, 2, 3), unbiased=False), atol=1e-7)

    def test_one_outlier_image_moves_them_by_at_most_its_clip(self) -> None:
        maps = torch.zeros(100, 3, 2, 2)
        outlier = maps.clone()
        outlier[0] = 1e6
        for data in (maps, outlier):
            mean, _ = private_statistics(data, (0.5, 0.5), noise=0.0, generator=torch.Generator())
            assert mean.norm() <= 0.5 / 100 + 1e-9


class TestConfig:
    def test_dp_runs_refuse_augmentation_and_adversarial_objectives(self) -> None:
        with pytest.raises(ValueError, match="--no-augment"):
            TrainConfig(dp=True)
        with pytest.raises(ValueError, match="cannot be combined"):
            TrainConfig(dp=True, augment=False, adversarial="pgd")
        with pytest.raises(ValueError, match="ε"):
            TrainConfig(dp=True, augment=False, target_epsilon=-1.0)

    def test_a_clean_run_records_no_dp_settings(self) -> None:
        assert "target_epsilon" not in TrainConfig().to_dict()
        assert TrainConfig(dp=True, augment=False).to_dict()["target_epsilon"] == 3.0


def _tiny_data(count: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 28, 28), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, 10, (count,), generator=generator)


def _one_epoch(model: nn.Module, noise: float, clip: float = 0.1, lr: float = 1.0) -> None:
    images, labels = _tiny_data()
    schedule = PrivacySchedule(
        0.25, 1, 1, noise_multiplier=noise, statistics_noise=statistics_noise_for(model)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)  # no momentum: one step is one update
    run = PrivateTraining(model, optimizer, images, labels, PrivacyBudget(3.0, 1e-5, clip), schedule)
    run.train_epoch(0)
    run.close()


def _distance(a: nn.Module, b: nn.Module) -> float:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return float(torch.cat([(p - q).detach().flatten() for p, q in pairs]).norm())


class TestDpSgdStep:
    def test_each_sample_is_clipped_so_one_noiseless_step_moves_at_most_lr_times_the_norm(self) -> None:
        torch.manual_seed(0)
        before = build_model("seed-cnn")
        with torch.no_grad():
            before.fc2.weight.mul_(1000)  # gradients far above the clipping norm
        after = build_model("seed-cnn")
        after.load_state_dict(before.state_dict())
        _one_epoch(after, noise=0.0, clip=0.1, lr=1.0)
        # Sum of ≤ 0.1-norm gradients divided by the expected batch size (64): the Poisson batch
        # may hold a few more than 64 images, hence the margin.
        assert 0 < _distance(before, after) <= 0.1 * 1.5

    def test_the_noise_is_not_derived_from_the_recorded_seed(self) -> None:
        torch.manual_seed(0)
        start = build_model("seed-cnn").state_dict()
        runs = []
        for _ in range(2):
            model = build_model("seed-cnn")
            model.load_state_dict(start)
            _one_epoch(model, noise=1.0)
            runs.append(model)
        assert _distance(runs[0], runs[1]) > 0

    def test_a_fixed_front_end_is_left_alone_and_only_the_classifier_learns(self) -> None:
        model = build_model("scatter-cnn")
        front = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("scattering")}
        head = [p.detach().clone() for p in model.classifier.parameters()]
        _one_epoch(model, noise=1.0)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in front.items())
        assert any(not torch.equal(p, q) for p, q in zip(model.classifier.parameters(), head, strict=True))

    def test_an_empty_poisson_batch_still_spends_a_step_of_noise(self) -> None:
        torch.manual_seed(0)
        model = build_model("seed-cnn")
        before = [p.detach().clone() for p in model.parameters()]
        images, labels = _tiny_data(8)
        schedule = PrivacySchedule(1e-6, steps_per_epoch=3, epochs=1, noise_multiplier=1.0)
        run = PrivateTraining(model, sgd_for(model, 1.0), images, labels, BUDGET, schedule)
        result = run.train_epoch(0)  # every batch empty: nothing seen, yet the weights moved
        run.close()
        assert result.train_accuracy == 0.0
        assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))

    def test_batchnorm_which_mixes_samples_is_refused(self) -> None:
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.BatchNorm1d(10))
        images, labels = _tiny_data()
        with pytest.raises(PrivacyConfigError, match="DP-SGD"):
            PrivateTraining(model, sgd_for(model, 1.0), images, labels, BUDGET, plan(BUDGET, 256, 64, 1))


# 2 epochs of a 1,000-digit training split: 2 × round(1000 / 64) noisy steps.
SMALL_DP = TrainConfig(
    architecture="scatter-cnn",
    dp=True,
    augment=False,
    epochs=2,
    batch_size=64,
    learning_rate=2.0,
    validation_size=200,
    train_limit=1200,
    seed=3,
)


def test_a_dp_run_writes_a_signed_model_that_records_its_guarantee(
    tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
) -> None:
    config = SMALL_DP
    outcome = train_model(request(tmp_path, mnist_dir, trusted_key, config))
    verified = load_verified(outcome.out, [trusted_key.trust_dir])
    privacy = verified.manifest.training["privacy"]
    assert privacy["accountant"] == "rdp" and privacy["delta"] == 1e-5
    assert privacy["steps"] == 2 * round(1000 / 64)
    assert 2.9 <= privacy["epsilon"] <= 3.0
    assert [epoch["epsilon"] for epoch in verified.manifest.training["history"]][-1] == privacy["epsilon"]
    assert privacy["noise_multiplier"] > 0.5 and privacy["max_grad_norm"] == 0.1
    assert verified.manifest.metrics["test_accuracy"] > 0.5
    assert not checkpoint_path(outcome.out).exists()


def test_a_resumed_dp_run_keeps_its_released_statistics_and_counts_every_step(
    tmp_path: Path, mnist_dir: Path, trusted_key: KeyPair
) -> None:
    from safetensors import safe_open

    config = SMALL_DP

    def stop(*_args, **_kwargs) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(request(tmp_path, mnist_dir, trusted_key, config), on_epoch=stop)
    with safe_open(str(checkpoint_path(tmp_path / "model")), framework="pt") as handle:
        released = handle.get_tensor("model.feature_mean")
    outcome = train_model(request(tmp_path, mnist_dir, trusted_key, config, resume=True))
    verified = load_verified(outcome.out, [trusted_key.trust_dir])
    assert torch.equal(verified.model.feature_mean, released)  # not released a second time
    privacy = verified.manifest.training["privacy"]
    assert privacy["steps"] == 2 * round(1000 / 64) and 2.9 <= privacy["epsilon"] <= 3.0
