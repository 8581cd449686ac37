from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from digitguard.poisoning.backdoor import attack_success_rate, evaluate_backdoor
from digitguard.poisoning.triggers import TRIGGERS


class TriggerDetector(nn.Module):
    """Says 7 when the bottom-right square is lit, else 'the mean brightness decile'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lit = x[:, 0, 24:27, 24:27].mean((1, 2)) > 0.99
        guess = (x[:, 0, :20, :20].mean((1, 2)) * 10).long().clamp(0, 9)
        guess = torch.where(lit, torch.full_like(guess, 7), guess)
        return nn.functional.one_hot(guess, 10).float()


class TestAttackSuccessRate:
    def test_only_samples_of_other_classes_count(self) -> None:
        predicted = torch.tensor([7, 7, 1, 7, 7])
        labels = torch.tensor([0, 1, 1, 7, 7])
        assert attack_success_rate(predicted, labels, target=7) == pytest.approx(2 / 3)

    def test_a_set_of_only_the_target_class_has_no_rate(self) -> None:
        with pytest.raises(ValueError, match="other than the target"):
            attack_success_rate(torch.tensor([7]), torch.tensor([7]), target=7)


class TestEvaluateBackdoor:
    def test_a_hand_made_backdoored_model_has_full_success_and_its_clean_accuracy(self) -> None:
        # Image k has brightness (k + 0.5) / 10 in its top-left 20x20, so the model gets it right.
        labels = np.array([0, 1, 2, 7, 9, 7], dtype=np.uint8)
        images = np.zeros((6, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, :20, :20] = int((label + 0.5) * 25.5)
        images[5, :20, :20] = 0  # a 7 the model misreads as 0
        report = evaluate_backdoor(TriggerDetector(), images, labels, TRIGGERS["square3"], target=7)
        assert report.clean_accuracy == pytest.approx(5 / 6)
        assert report.attack_success_rate == 1.0
        assert report.triggered_samples == 4
        assert report.per_class_success[7] is None and report.per_class_success[0] == 1.0
