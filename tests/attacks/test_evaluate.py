from __future__ import annotations

import json

import pytest
import torch

from digitguard.attacks.base import Attack
from digitguard.attacks.evaluate import (
    EpsilonResult,
    RobustnessReport,
    compare_with_referee,
    evaluate_attack,
    search_epsilon,
)
from digitguard.attacks.fgsm import FGSM
from digitguard.errors import AttackError, PerturbationBudgetError, RefereeDisagreementError


class FixedClassifier(torch.nn.Module):
    """Predicts the class stored in pixel (0, 0) as tenths: 0.3 → class 3. Lets tests script outcomes."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        classes = (images[:, 0, 0, 0] * 10).round().long().clamp(0, 9)
        return torch.nn.functional.one_hot(classes, 10).float()


class ShiftFirstPixel(Attack):
    """Adds ε to pixel (0, 0) of the first ``count`` images: each such image's class moves by 10·ε."""

    name = "shift"

    def __init__(self, model: torch.nn.Module, eps: float, count: int, overshoot: float = 0.0) -> None:
        super().__init__(model, eps)
        self.count, self.overshoot = count, overshoot

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        adversarial = images.clone()
        adversarial[: self.count, 0, 0, 0] += self.eps + self.overshoot
        return adversarial.clamp(0, 1)


def scripted_set() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.zeros(10, 1, 28, 28)
    images[:, 0, 0, 0] = 0.2  # the model says 2 for every image
    labels = torch.tensor([2] * 8 + [5, 5])  # so it is right on 8 of 10
    return images, labels


class TestRobustAccuracy:
    def test_robust_accuracy_and_success_rate_follow_their_definitions(self) -> None:
        images, labels = scripted_set()
        model = FixedClassifier().eval()
        # The first 3 images move to another class: 3 of the 8 correct ones flip; images 8-9 stay wrong.
        run = evaluate_attack(model, lambda eps: ShiftFirstPixel(model, eps, 3), images, labels, [0.1])
        report, result = run.report, run.report.results[0]
        assert (report.samples, report.clean_correct, report.clean_accuracy) == (10, 8, 0.8)
        assert (result.flipped, result.robust_correct) == (3, 5)
        assert result.robust_accuracy == 0.5
        assert result.attack_success_rate == 3 / 8
        assert result.max_perturbation == pytest.approx(0.1)

    def test_a_wrong_image_the_attack_makes_right_does_not_count_as_robust(self) -> None:
        images, labels = scripted_set()
        labels[:] = 3  # wrong everywhere; shifting by 0.1 makes the first 4 images "3"
        model = FixedClassifier().eval()
        result = evaluate_attack(model, lambda eps: ShiftFirstPixel(model, eps, 4), images, labels, [0.1])
        assert result.report.results[0].robust_accuracy == 0.0

    def test_an_attack_that_leaves_its_budget_stops_the_run(self) -> None:
        images, labels = scripted_set()
        model = FixedClassifier().eval()
        with pytest.raises(PerturbationBudgetError, match="shift"):
            evaluate_attack(model, lambda eps: ShiftFirstPixel(model, eps, 3, 0.01), images, labels, [0.1])

    def test_results_do_not_depend_on_the_evaluation_batch_size(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        runs = [
            evaluate_attack(
                tiny_model, lambda eps: FGSM(tiny_model, eps), images, labels, [0.05], batch_size=b
            )
            for b in (1, 5, 100)
        ]
        assert len({(r.report.results[0].robust_correct, r.report.results[0].flipped) for r in runs}) == 1

    def test_the_report_is_json(self, tiny_model, tiny_batch) -> None:
        run = evaluate_attack(tiny_model, lambda eps: FGSM(tiny_model, eps), *tiny_batch, [0.1, 0.2])
        document = json.loads(json.dumps(run.report.to_dict()))
        assert [r["eps"] for r in document["results"]] == [0.1, 0.2]
        assert document["attack"] == "fgsm" and document["norm"] == "Linf"

    def test_examples_are_correctly_classified_images_with_one_row_per_epsilon(self) -> None:
        images, labels = scripted_set()
        model = FixedClassifier().eval()
        run = evaluate_attack(model, lambda eps: ShiftFirstPixel(model, eps, 3), images, labels, [0.1, 0.2])
        assert len(run.examples.images) == 8  # the 8 correct ones, not the 2 wrong ones
        assert run.examples.epsilons == (0.1, 0.2)
        assert run.examples.predictions[0][:4].tolist() == [3, 3, 3, 2]

    def test_a_model_in_training_mode_is_refused(self, tiny_model, tiny_batch) -> None:
        tiny_model.train()
        with pytest.raises(ValueError, match="eval mode"):
            evaluate_attack(tiny_model, lambda eps: FGSM(tiny_model, eps), *tiny_batch, [0.1])


class TestEpsilonSearch:
    def test_bisects_to_the_budget_where_accuracy_crosses_the_target(self) -> None:
        images = torch.zeros(10, 1, 28, 28)
        images[:, 0, 0, 0] = torch.linspace(0.1, 1.0, 10)  # 0.1, 0.2, …, 1.0: the last one is already wrong
        model = ThresholdClassifier().eval()
        labels = torch.zeros(10, dtype=torch.long)
        search = search_epsilon(model, lambda eps: ShiftAll(model, eps), images, labels, 0.45, tolerance=1e-3)
        # An image x is broken once x + ε > 0.95: five (0.1 … 0.5) stay robust up to ε = 0.45, four after.
        assert search.above.robust_accuracy == 0.5 and search.at_or_below.robust_accuracy == 0.4
        assert search.at_or_below.eps - search.above.eps <= 1e-3
        assert 0.449 <= search.above.eps <= 0.45 <= search.at_or_below.eps <= 0.451

    def test_known_results_narrow_the_first_bracket(self) -> None:
        images = torch.zeros(10, 1, 28, 28)
        images[:, 0, 0, 0] = torch.linspace(0.1, 1.0, 10)
        model = ThresholdClassifier().eval()
        labels = torch.zeros(10, dtype=torch.long)
        known = [_result(0.4, 0.6), _result(0.5, 0.3)]
        search = search_epsilon(model, lambda eps: ShiftAll(model, eps), images, labels, 0.45, known=known)
        assert search.evaluations and all(0.4 < r.eps < 0.5 for r in search.evaluations)

    def test_a_target_above_clean_accuracy_is_refused(self, tiny_model, tiny_batch) -> None:
        with pytest.raises(AttackError, match="clean accuracy"):
            search_epsilon(tiny_model, lambda eps: FGSM(tiny_model, eps), *tiny_batch, 0.99)


class ThresholdClassifier(torch.nn.Module):
    """Class 0 while pixel (0, 0) ≤ 0.95, class 1 above."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([0.95 - images[:, 0, 0, 0], images[:, 0, 0, 0] - 0.95], dim=1)


class ShiftAll(Attack):
    name = "shift-all"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        adversarial = images.clone()
        adversarial[:, 0, 0, 0] += self.eps
        return adversarial.clamp(0, 1)


def _result(eps: float, accuracy: float) -> EpsilonResult:
    return EpsilonResult(eps, accuracy, 0.0, int(accuracy * 10), 0, eps, 0.0)


def _report(accuracies: list[float]) -> RobustnessReport:
    results = tuple(_result(0.1 * (i + 1), a) for i, a in enumerate(accuracies))
    return RobustnessReport("fgsm", "Linf", {}, 1000, 990, 0.99, results)


class TestRefereeComparison:
    def test_differences_up_to_the_tolerance_agree(self) -> None:
        referee = compare_with_referee(_report([0.5, 0.2]), _report([0.503, 0.2]))
        assert referee.agreed
        assert referee.comparisons[0].difference_points == pytest.approx(0.3)
        referee.check()

    def test_a_larger_difference_fails_naming_the_budget(self) -> None:
        referee = compare_with_referee(_report([0.5, 0.2]), _report([0.5, 0.204]))
        assert not referee.agreed
        with pytest.raises(RefereeDisagreementError, match=r"ε = 0\.2") as info:
            referee.check()
        assert info.value.exit_code == 1

    def test_reports_over_different_budgets_cannot_be_compared(self) -> None:
        with pytest.raises(ValueError, match="same images"):
            compare_with_referee(_report([0.5, 0.2]), _report([0.5]))
