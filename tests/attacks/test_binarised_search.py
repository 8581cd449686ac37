"""The binarised-image search against the feature-squeezing detector, and the worst case over attacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from digitguard.attacks.adaptive import SqueezeAwarePGD
from digitguard.attacks.base import Attack
from digitguard.attacks.binarised_search import BinarisationBox, BinarisedSearchAttack, flippable
from digitguard.attacks.registry import AttackOptions, attack_for
from digitguard.defences.evaluate import WORST_CASE, evaluate_detection, evaluate_worst_case
from digitguard.defences.squeeze import binarize, calibrate, median_filter, squeeze_forward
from digitguard.errors import AttackError
from tests.conftest import SHARED_MNIST

EPS = 0.3
# Small settings: the full attack (every wrong class, 100 steps) is measured by bench/squeeze_break.py.
QUICK = {"steps": 20, "targets": 2, "search_steps": 20, "refine_steps": 10}


@pytest.fixture(scope="module")
def small_cnn() -> nn.Module:
    """A 2-layer CNN trained for 2 epochs on 4,000 MNIST training digits (about 96% test accuracy, 2 s)."""
    from digitguard.data import mnist
    from digitguard.training.loop import to_model_input

    if not (Path(SHARED_MNIST) / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    train = mnist.load(SHARED_MNIST).train
    images = to_model_input(torch.from_numpy(train.images[:4000].copy()))
    labels = torch.from_numpy(train.labels[:4000].astype(np.int64))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),  # (b, 8, 12, 12)
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # (b, 16, 4, 4)
        nn.Flatten(), nn.Linear(256, 10),
    )  # fmt: skip
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in range(2):
        for batch in torch.randperm(len(images)).split(64):
            optimiser.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimiser.step()
    torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def threshold(small_cnn: nn.Module, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> float:
    """τ flagging 5% of clean test digits 100–199 (the attacked digits are 0–29)."""
    images, _labels = mnist_test
    return calibrate(small_cnn, images[100:], 0.05, "test digits 100-199").threshold


def correct_or_flagged(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threshold: float
) -> float:
    with torch.no_grad():
        output = squeeze_forward(model, images)
    return float(((output.logits.argmax(1) == labels) | (output.scores > threshold)).float().mean())


class TestBinarisationBox:
    def test_only_pixels_within_eps_of_the_threshold_can_flip(self) -> None:
        images = torch.tensor([0.0, 0.19, 0.21, 0.5, 0.79, 0.81, 1.0]).view(1, 1, 1, 7)
        assert flippable(images, EPS).flatten().tolist() == [False, False, True, True, True, False, False]

    def test_projecting_into_it_keeps_the_binary_image_the_eps_ball_and_the_range(self) -> None:
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(16, 1, 28, 28, generator=generator)
        images[:, :, :3] = 0.0
        images[:, :, -3:] = 1.0
        images[:, :, 10, :4] = torch.tensor([0.2, 0.5, 0.8, 0.5 + 1e-7])  # at the edges of reach
        flips = flippable(images, EPS) & (torch.rand(images.shape, generator=generator) < 0.5)
        binary = torch.where(flips, 1 - binarize(images), binarize(images))
        box = BinarisationBox.around(images, binary, EPS)
        for scale in (0.01, 0.3, 3.0):
            wild = images + scale * torch.randn(images.shape, generator=generator)
            projected = box.project(wild)
            assert torch.equal(binarize(projected), binary)
            assert float((projected - images).abs().max()) <= EPS + 1e-6
            assert float(projected.min()) >= 0.0 and float(projected.max()) <= 1.0

    def test_a_binary_image_out_of_reach_is_refused(self) -> None:
        images = torch.zeros(1, 1, 28, 28)
        binary = images.clone()
        binary[0, 0, 5, 5] = 1.0  # a black pixel cannot binarise to 1 within ε = 0.3
        with pytest.raises(AttackError, match="no perturbation within"):
            BinarisationBox.around(images, binary, EPS)


class TestBinarisedSearchAttack:
    def test_it_stays_in_the_eps_ball_and_in_range(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        for threshold in (None, 0.5):
            adversarial = BinarisedSearchAttack(tiny_model, EPS, threshold=threshold, **QUICK)(images, labels)
            assert adversarial.shape == images.shape
            assert float((adversarial - images).abs().max()) <= EPS + 1e-6
            assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0

    def test_it_lowers_correct_or_flagged_far_below_clean_and_below_the_straight_through_attack(
        self, small_cnn, mnist_test, threshold
    ) -> None:
        images, labels = (tensor[:30] for tensor in mnist_test)
        clean = correct_or_flagged(small_cnn, images, labels, threshold)
        straight_through = evaluate_detection(
            small_cnn, lambda eps: SqueezeAwarePGD(small_cnn, eps, threshold=threshold, steps=20),
            images, labels, EPS, threshold,
        )  # fmt: skip
        searched = evaluate_detection(
            small_cnn, lambda eps: BinarisedSearchAttack(small_cnn, eps, threshold=threshold, **QUICK),
            images, labels, EPS, threshold,
        )  # fmt: skip
        # Measured: clean 97%, straight-through 70%, binarised search 40%.
        assert clean >= 0.9
        assert searched.correct_or_flagged <= clean - 0.3
        assert searched.correct_or_flagged < straight_through.correct_or_flagged

    def test_without_a_threshold_it_fools_the_classifier_on_all_three_views(
        self, small_cnn, mnist_test
    ) -> None:
        images, labels = (tensor[:20] for tensor in mnist_test)
        adversarial = BinarisedSearchAttack(small_cnn, EPS, threshold=None, **QUICK)(images, labels)
        with torch.no_grad():
            clean_correct = float((small_cnn(images).argmax(1) == labels).float().mean())
            views = [adversarial, binarize(adversarial), median_filter(adversarial)]
            correct = [float((small_cnn(view).argmax(1) == labels).float().mean()) for view in views]
        assert max(correct) <= clean_correct - 0.3

    @pytest.mark.parametrize("random_start", [False, True])
    def test_the_same_image_gets_the_same_result_in_any_batch_and_on_every_run(
        self, small_cnn, mnist_test, threshold, random_start: bool
    ) -> None:
        images, labels = (tensor[:4] for tensor in mnist_test)
        attack = BinarisedSearchAttack(
            small_cnn, EPS, threshold=threshold, random_start=random_start, seed=3, **QUICK
        )
        together = attack(images, labels)
        alone = torch.cat([attack(images[i : i + 1], labels[i : i + 1]) for i in range(4)])
        reversed_batch = attack(images.flip(0), labels.flip(0)).flip(0)
        assert torch.allclose(together, alone, atol=1e-6)
        assert torch.allclose(together, reversed_batch, atol=1e-6)
        assert torch.equal(together, attack(images, labels))

    @pytest.mark.parametrize(
        "settings",
        [
            {"threshold": 5.0},
            {"threshold": None, "steps": 0},
            {"threshold": None, "targets": 0},
            {"threshold": None, "targets": 10},
            {"threshold": None, "confidence": 1.0},
            {"threshold": None, "shortlist": 0},
        ],
    )
    def test_bad_settings_are_refused(self, tiny_model, settings: dict) -> None:
        with pytest.raises(AttackError):
            BinarisedSearchAttack(tiny_model, EPS, **settings)

    def test_the_registry_offers_it_without_a_detector_and_refuses_restarts(self, tiny_model) -> None:
        attack = attack_for("binarised-search", tiny_model, AttackOptions(steps=7))(0.2)
        assert isinstance(attack, BinarisedSearchAttack)
        assert attack.threshold is None and attack.steps == 7 and attack.eps == 0.2
        with pytest.raises(AttackError, match="--restarts"):
            attack_for("binarised-search", tiny_model, AttackOptions(restarts=2))


class TestWorstCase:
    def test_per_image_the_strongest_attack_counts(self, small_cnn, mnist_test, threshold) -> None:
        images, labels = (tensor[:20] for tensor in mnist_test)

        class Nothing(Attack):
            name = "nothing"

            def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
                return images.clone()

        makers = [
            lambda eps: Nothing(small_cnn, eps),
            lambda eps: BinarisedSearchAttack(small_cnn, eps, threshold=threshold, **QUICK),
        ]
        nothing, searched, worst = evaluate_worst_case(small_cnn, makers, images, labels, EPS, threshold)
        assert [nothing.attack, searched.attack, worst.attack] == ["nothing", "binarised-search", WORST_CASE]
        assert worst.settings == {"attacks": "nothing,binarised-search"} and worst.images == 20
        adversarial = BinarisedSearchAttack(small_cnn, EPS, threshold=threshold, **QUICK)(images, labels)
        with torch.no_grad():
            outcomes = [squeeze_forward(small_cnn, batch) for batch in (images, adversarial)]
        evaded = torch.zeros(20, dtype=torch.bool)
        wrong = torch.zeros(20, dtype=torch.bool)
        for output in outcomes:
            evaded |= (output.logits.argmax(1) != labels) & (output.scores <= threshold)
            wrong |= output.logits.argmax(1) != labels
        assert worst.correct_or_flagged == pytest.approx(1 - float(evaded.float().mean()))
        assert worst.robust_accuracy == pytest.approx(1 - float(wrong.float().mean()))
        assert worst.correct_or_flagged <= min(nothing.correct_or_flagged, searched.correct_or_flagged)
