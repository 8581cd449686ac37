"""The adaptive attack on classifier + detector, and the detection evaluation."""

from __future__ import annotations

import pytest
import torch

from digitguard.attacks.adaptive import SqueezeAwarePGD
from digitguard.attacks.pgd import PGD
from digitguard.defences.evaluate import clean_flag_rate, evaluate_detection
from digitguard.defences.squeeze import calibrate
from digitguard.errors import AttackError


@pytest.fixture(scope="module")
def threshold(basic, mnist_test) -> float:
    images, _labels = mnist_test
    return calibrate(basic.model, images[100:], 0.05, "test digits 100-199").threshold


def test_it_stays_in_the_eps_ball_and_in_range(basic, mnist_test, threshold) -> None:
    images, labels = mnist_test
    adversarial = SqueezeAwarePGD(basic.model, 0.3, threshold=threshold, steps=5)(images[:8], labels[:8])
    assert float((adversarial - images[:8]).abs().max()) <= 0.3 + 1e-6
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0


def test_with_a_budget_that_allows_any_image_it_evades_the_detector(basic, mnist_test, threshold) -> None:
    # ε = 1 lets the attacker draw any image: a working adaptive attack must then win on nearly all.
    images, labels = mnist_test
    result = evaluate_detection(
        basic.model,
        lambda eps: SqueezeAwarePGD(basic.model, eps, threshold=threshold, steps=20),
        images[:10],
        labels[:10],
        1.0,
        threshold,
    )
    assert result.correct_or_flagged <= 0.2


def test_it_evades_more_often_than_plain_pgd_which_ignores_the_detector(basic, mnist_test, threshold) -> None:
    images, labels = mnist_test
    args = (images[:20], labels[:20], 0.45, threshold)
    plain = evaluate_detection(basic.model, lambda eps: PGD(basic.model, eps, steps=20), *args)
    adaptive = evaluate_detection(
        basic.model, lambda eps: SqueezeAwarePGD(basic.model, eps, threshold=threshold, steps=20), *args
    )
    assert adaptive.correct_or_flagged < plain.correct_or_flagged


def test_the_same_image_gets_the_same_result_in_any_batch(basic, mnist_test, threshold) -> None:
    images, labels = mnist_test
    attack = SqueezeAwarePGD(basic.model, 0.3, threshold=threshold, steps=3)
    together = attack(images[:4], labels[:4])
    alone = torch.cat([attack(images[i : i + 1], labels[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_clean_rates_and_bad_settings(basic, mnist_test, threshold) -> None:
    images, labels = mnist_test
    clean = clean_flag_rate(basic.model, images[:100], labels[:100], threshold)
    assert clean["images"] == 100 and 0 <= clean["flagged"] <= 0.15 and clean["accuracy"] > 0.95
    with pytest.raises(AttackError):
        SqueezeAwarePGD(basic.model, 0.3, threshold=threshold, modes=("sideways",))
    with pytest.raises(AttackError):
        SqueezeAwarePGD(basic.model, 0.3, threshold=5.0)
