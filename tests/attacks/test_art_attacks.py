"""The attacks that run through ART: the referees of the native ones, and C&W and AutoAttack smoke runs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from digitguard.attacks.art_attacks import (
    ArtDefaultAutoAttackLinf,
    ArtFGSM,
    ArtPGD,
    AutoAttackLinf,
    CarliniWagnerLinf,
    seeded_global_rngs,
)
from digitguard.attacks.evaluate import compare_with_referee, evaluate_attack
from digitguard.attacks.fgsm import FGSM
from digitguard.attacks.pgd import PGD


class TestReferee:
    """Native FGSM and PGD agree with ART's on 200 test images of the release model (0.3 points)."""

    def test_native_fgsm_agrees_with_art(self, basic, mnist_test) -> None:
        model = basic.model
        native = evaluate_attack(model, lambda eps: FGSM(model, eps), *mnist_test, [0.1])
        art = evaluate_attack(model, lambda eps: ArtFGSM(model, eps), *mnist_test, [0.1])
        referee = compare_with_referee(native.report, art.report)
        assert referee.agreed, referee.to_dict()
        assert 0.2 < native.report.results[0].robust_accuracy < 0.9  # a budget where the attack matters
        for mine, theirs in zip(native.examples.adversarial, art.examples.adversarial, strict=True):
            assert (mine - theirs).abs().max() < 1e-5  # the very same images, not just the same count

    def test_native_pgd_from_the_zero_start_agrees_with_art(self, basic, mnist_test) -> None:
        # Random starts cannot be made identical across implementations: both start at the image.
        model = basic.model
        native = evaluate_attack(
            model, lambda e: PGD(model, e, steps=3, random_start=False), *mnist_test, [0.1]
        )
        art = evaluate_attack(model, lambda e: ArtPGD(model, e, steps=3), *mnist_test, [0.1])
        referee = compare_with_referee(native.report, art.report)
        assert referee.agreed, referee.to_dict()
        assert native.report.results[0].robust_accuracy < 0.5
        assert art.report.settings["step_size"] == pytest.approx(native.report.settings["step_size"])


class TestSeeding:
    def test_art_runs_seed_the_global_generators_and_restore_them(self) -> None:
        np.random.seed(123)
        random.seed(123)
        expected = (np.random.random(), random.random())
        np.random.seed(123)
        random.seed(123)
        with seeded_global_rngs(7):
            inside = (np.random.random(), random.random())
        assert (np.random.random(), random.random()) == expected
        with seeded_global_rngs(7):
            assert (np.random.random(), random.random()) == inside


class TestCarliniWagner:
    def test_finds_an_example_within_a_large_budget_and_searches_once_for_all_budgets(
        self, tiny_model, mnist_test
    ) -> None:
        # The linear model keeps this smoke run to seconds: ART's C&W optimises one image at a time.
        images, labels = mnist_test[0][:1], tiny_model(mnist_test[0][:1]).argmax(1).detach()
        cache: dict = {}
        run = evaluate_attack(
            tiny_model,
            lambda eps: CarliniWagnerLinf(tiny_model, eps, cache=cache),
            images,
            labels,
            [0.01, 1.0],
        )
        small, large = run.report.results
        assert large.attack_success_rate == 1.0  # it found an example, within L∞ ≤ 1
        assert small.flipped == 0 and small.max_perturbation == 0.0  # one beyond ε = 0.01 is not used
        assert len(cache) == 1  # one search per image, not one per budget
        assert run.report.settings["implementation"] == "art.CarliniLInfMethod"


class TestAutoAttack:
    def test_breaks_the_release_model_at_the_seeds_largest_budget(self, basic, mnist_test) -> None:
        images, labels = mnist_test[0][:2], mnist_test[1][:2]
        run = evaluate_attack(
            basic.model, lambda eps: AutoAttackLinf(basic.model, eps), images, labels, [0.3]
        )
        assert run.report.results[0].robust_accuracy == 0.0
        assert run.report.results[0].max_perturbation <= 0.3 + 1e-5
        assert "APGD-CE" in str(run.report.settings["attacks"])

    def test_settings_name_the_standard_stages_and_count_what_each_broke(self, basic, mnist_test) -> None:
        attack = AutoAttackLinf(basic.model, 0.3)
        attack(*(tensor[:3] for tensor in mnist_test))
        settings = attack.settings()
        assert settings["attacks"] == "APGD-CE, APGD-T (9 targets), Square"
        assert settings["eps_step"] == pytest.approx(0.6)
        assert settings["broken_by_APGD-CE"] == 3  # the release model has no robustness at 0.3
        assert settings["broken_by_APGD-T"] == settings["broken_by_Square"] == 0

    def test_targets_are_the_nine_other_classes_most_likely_first(self, tiny_model) -> None:
        logits = np.array([[0.0, 5.0, 1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0]], dtype=np.float32)
        truth = np.array([9])
        stages = list(AutoAttackLinf(tiny_model, 0.3)._stages(logits, truth))
        assert [name for name, _, _ in stages] == ["APGD-CE"] + ["APGD-T"] * 9 + ["Square"]
        targets = [int(goals[0]) for name, _, goals in stages if name == "APGD-T"]
        assert targets == [8, 7, 6, 1, 5, 4, 3, 2, 0]
        assert int(stages[0][2][0]) == int(stages[-1][2][0]) == 9  # untargeted stages use the label

    def test_a_candidate_outside_the_ball_or_the_pixel_range_never_counts(self, tiny_model) -> None:
        attack = AutoAttackLinf(tiny_model, 0.1)
        originals = np.full((3, 1, 28, 28), 0.5, dtype=np.float32)
        originals[1] = 0.05
        candidates = originals.copy()
        candidates[0, 0, 0, 0] += 0.1 + 1e-3  # just outside the ε-ball
        candidates[1, 0, 0, 0] = -0.01  # inside the ball, outside [0, 1]
        wrong = (attack.classifier.predict(candidates).argmax(1) + 1) % 10  # every one misclassified
        assert attack._fooled(originals, candidates, wrong).tolist() == [False, False, True]

    def test_arts_default_list_stays_available_under_its_own_name(self, tiny_model) -> None:
        settings = ArtDefaultAutoAttackLinf(tiny_model, 0.3).settings()
        assert settings["implementation"] == "art.AutoAttack (default attack list)"
        assert settings["eps_step"] == pytest.approx(0.6)


class NoisyArtAttack:
    """Stands in for an ART attack that draws from numpy's global generator, as ART's do."""

    def generate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.clip(x + np.random.uniform(-0.01, 0.01, x.shape), 0, 1).astype(np.float32)


class TestArtPlumbing:
    def test_a_seeded_art_run_is_reproducible_and_another_seed_differs(self, tiny_model, tiny_batch) -> None:
        runs = [
            ArtFGSM(tiny_model, 0.1, seed=seed)._generate(NoisyArtAttack(), *tiny_batch) for seed in (1, 1, 2)
        ]
        assert torch.equal(runs[0], runs[1])
        assert not torch.equal(runs[0], runs[2])
        assert runs[0].dtype == torch.float32 and runs[0].shape == tiny_batch[0].shape
