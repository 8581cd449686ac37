"""Croce & Hein's AutoAttack (pyautoattack) behind the project's Attack interface."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from digitguard.attacks.reference_autoattack import STANDARD_STAGES, ReferenceAutoAttack
from digitguard.attacks.registry import AttackOptions, attack_for
from digitguard.errors import AttackError, PerturbationBudgetError

GRADIENT_STAGES = ("apgd-ce", "apgd-t")  # seconds, where the standard four take several


@pytest.fixture
def small_mlp() -> nn.Module:
    """Non-linear, so that APGD's random start changes where it ends (on a linear model it does not)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


@pytest.fixture
def batch(small_mlp: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight images the model gets right (their labels are its predictions)."""
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return images, small_mlp(images).argmax(1)


def correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(images).argmax(1) == labels).sum())


class TestStandardVersion:
    def test_every_output_is_in_the_epsilon_ball_and_the_pixel_range_and_accuracy_does_not_rise(
        self, small_mlp, batch
    ) -> None:
        images, labels = batch
        attack = ReferenceAutoAttack(small_mlp, 0.01)
        adversarial = attack(images, labels)
        assert adversarial.shape == images.shape and adversarial.dtype == torch.float32
        assert (adversarial - images).abs().amax() <= 0.01 + 1e-6
        assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
        robust = correct(small_mlp, adversarial, labels)
        assert 0 < robust < correct(small_mlp, images, labels) == 8  # it broke some, not all
        assert attack.settings()["attacks"] == "apgd-ce, apgd-t, fab-t, square"

    def test_an_image_it_cannot_break_comes_back_unchanged(self, small_mlp, batch) -> None:
        images, labels = batch
        adversarial = ReferenceAutoAttack(small_mlp, 0.01, stages=GRADIENT_STAGES)(images, labels)
        with torch.no_grad():
            standing = small_mlp(adversarial).argmax(1) == labels
        assert standing.any()
        assert torch.equal(adversarial[standing], images[standing])

    def test_the_default_is_the_standard_list_with_square_at_5000_queries(self, small_mlp) -> None:
        attack = ReferenceAutoAttack(small_mlp, 0.3)
        assert attack.stages == STANDARD_STAGES
        settings = attack.settings()
        assert str(settings["implementation"]).startswith("pyautoattack 0.2.0")
        assert settings["square_queries"] == 5000


class TestReproducibility:
    def test_runs_with_the_same_seed_are_identical_and_another_seed_differs(self, small_mlp, batch) -> None:
        runs = [
            ReferenceAutoAttack(small_mlp, 0.01, seed=seed, stages=GRADIENT_STAGES)(*batch)
            for seed in (0, 0, 1)
        ]
        assert torch.equal(runs[0], runs[1])
        assert not torch.equal(runs[0], runs[2])

    def test_the_global_torch_generator_is_left_as_it_was(self, small_mlp, batch) -> None:
        before = torch.get_rng_state()
        ReferenceAutoAttack(small_mlp, 0.01, stages=("apgd-ce",))(*batch)
        assert torch.equal(torch.get_rng_state(), before)


class TestQuiet:
    def test_the_references_own_checks_become_flags_and_reach_no_log(self, small_mlp, batch, caplog) -> None:
        probabilities = nn.Sequential(small_mlp, nn.Softmax(dim=1)).eval()  # what its check warns about
        attack = ReferenceAutoAttack(probabilities, 0.01, stages=("apgd-ce",))
        with caplog.at_level(logging.DEBUG):
            attack(*batch)
        assert "probability distribution" in str(attack.settings()["flags"])
        assert caplog.records == []


class TestRefusals:
    def test_a_result_outside_the_ball_stops_the_run(self, small_mlp, batch, monkeypatch) -> None:
        import pyautoattack

        def too_far(self, images, labels, *, batch_size):
            return (images + 0.05).clamp(0, 1), labels

        monkeypatch.setattr(pyautoattack.AutoAttack, "run_standard_evaluation", too_far)
        with pytest.raises(PerturbationBudgetError, match="autoattack-reference: L∞ perturbation"):
            ReferenceAutoAttack(small_mlp, 0.01)(*batch)

    @pytest.mark.parametrize("stages", [(), ("apgd-ce", "deepfool"), ("fab",)])
    def test_stages_outside_the_standard_list_are_refused(self, small_mlp, stages) -> None:
        with pytest.raises(AttackError, match="non-empty subset"):
            ReferenceAutoAttack(small_mlp, 0.3, stages=stages)

    def test_a_subset_runs_in_the_standard_order(self, small_mlp) -> None:
        assert ReferenceAutoAttack(small_mlp, 0.3, stages=("square", "apgd-ce")).stages == (
            "apgd-ce",
            "square",
        )

    def test_an_empty_batch_comes_back_empty(self, small_mlp) -> None:
        empty = torch.empty(0, 1, 28, 28)
        assert (
            ReferenceAutoAttack(small_mlp, 0.3)(empty, torch.empty(0, dtype=torch.long)).shape == empty.shape
        )


class TestRegistry:
    def test_the_registry_builds_it_with_the_seed_and_batch_size_asked_for(self, small_mlp) -> None:
        attack = attack_for("autoattack-reference", small_mlp, AttackOptions(seed=3, batch_size=7))(0.3)
        assert isinstance(attack, ReferenceAutoAttack)
        assert (attack.seed, attack.batch_size, attack.eps) == (3, 7, 0.3)

    def test_pgd_settings_are_refused(self, small_mlp) -> None:
        with pytest.raises(AttackError, match="apply to pgd, not to autoattack-reference"):
            attack_for("autoattack-reference", small_mlp, AttackOptions(steps=10))
