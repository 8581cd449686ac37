"""The attack built for the served decision: both networks moved to the same wrong digit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from digitguard.attacks.base import check_budget
from digitguard.attacks.decision_pgd import DecisionTargetedPGD
from digitguard.attacks.pgd import PGD
from digitguard.data import mnist
from digitguard.errors import AttackError
from digitguard.inference.decision import ServedDecision, correct_or_abstained
from digitguard.training.loop import to_model_input
from tests.conftest import SHARED_MNIST


def linear(classes: int, images: torch.Tensor, labels: torch.Tensor, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if not (SHARED_MNIST / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    loaded = mnist.load(SHARED_MNIST)
    train_x = to_model_input(torch.from_numpy(loaded.train.images[:3000].copy()))
    train_y = torch.from_numpy(loaded.train.labels[:3000].astype(np.int64))
    test_x = to_model_input(torch.from_numpy(loaded.test.images[:60].copy()))
    test_y = torch.from_numpy(loaded.test.labels[:60].astype(np.int64))
    return train_x, train_y, test_x, test_y


@pytest.fixture(scope="module")
def decision(data) -> ServedDecision:
    train_x, train_y, _, _ = data
    torch.set_num_threads(1)
    # The gate learns from the other half of the images: two models that differ, as served.
    gate = linear(11, train_x[1500:], train_y[1500:], 1)
    return ServedDecision(linear(10, train_x, train_y, 0), gate, 0.7)


def holds(decision: ServedDecision, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float(correct_or_abstained(decision.decide(images), labels).double().mean())


class TestDecisionTargetedPGD:
    def test_it_gets_wrong_answers_where_attacking_the_primary_alone_only_gets_abstentions(
        self, decision, data
    ) -> None:
        _, _, x, y = data
        clean = holds(decision, x, y)
        primary_only = holds(decision, PGD(decision.primary, 0.1, steps=20)(x, y), y)
        built_for_it = holds(decision, DecisionTargetedPGD(decision, 0.1, steps=20, targets=3)(x, y), y)
        assert clean > 0.9
        assert built_for_it < 0.1
        assert built_for_it < primary_only - 0.1

    def test_it_stays_in_the_budget_and_is_batch_independent(self, decision, data) -> None:
        _, _, x, y = data
        attack = DecisionTargetedPGD(decision, 0.1, steps=5, targets=2, seed=3)
        whole = attack(x[:12], y[:12])
        assert check_budget(whole, x[:12], 0.1, attack.name) <= 0.1 + 1e-6
        assert torch.equal(attack(x[4:8], y[4:8]), whole[4:8])

    def test_it_refuses_a_bare_classifier_and_bad_settings(self, decision) -> None:
        with pytest.raises(AttackError, match="ServedDecision"):
            DecisionTargetedPGD(decision.primary, 0.3)
        with pytest.raises(AttackError, match="targets"):
            DecisionTargetedPGD(decision, 0.3, targets=10)

    def test_kappa_asks_for_at_least_the_threshold_s_confidence(self, decision) -> None:
        attack = DecisionTargetedPGD(decision, 0.3)
        # against one rival, a logit margin κ means a probability of at least 1/(1+e^-κ)
        assert 1 / (1 + np.exp(-attack.kappa)) > decision.abstain_below
