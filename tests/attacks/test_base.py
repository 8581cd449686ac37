from __future__ import annotations

import math

import pytest
import torch

from digitguard.attacks.base import check_budget, check_epsilon, parse_epsilons, project
from digitguard.errors import AttackError, InvalidEpsilonError, PerturbationBudgetError


class TestEpsilonParsing:
    def test_a_comma_separated_list_keeps_its_order(self) -> None:
        assert parse_epsilons("0.3, 0.1,0.2") == (0.3, 0.1, 0.2)

    def test_one_is_the_largest_budget_allowed(self) -> None:
        assert parse_epsilons("1") == (1.0,)

    @pytest.mark.parametrize("text", ["0", "-0.1", "1.01", "nan", "inf", "0.1,2"])
    def test_a_budget_outside_zero_to_one_is_refused(self, text: str) -> None:
        with pytest.raises(InvalidEpsilonError, match=r"\(0, 1\]"):
            parse_epsilons(text)

    @pytest.mark.parametrize("text", ["", "a", "0.1,,0.2", "0.1;0.2", "0x1"])
    def test_unparsable_lists_are_refused_naming_the_input(self, text: str) -> None:
        with pytest.raises(InvalidEpsilonError, match=r"comma-separated|not a number"):
            parse_epsilons(text)

    def test_repeated_budgets_are_refused(self) -> None:
        with pytest.raises(InvalidEpsilonError, match="repeat"):
            parse_epsilons("0.1,0.1")

    def test_epsilon_errors_are_attack_errors_with_exit_status_2(self) -> None:
        with pytest.raises(AttackError) as info:
            check_epsilon(math.nan)
        assert info.value.exit_code == 2

    def test_booleans_are_not_budgets(self) -> None:
        with pytest.raises(InvalidEpsilonError):
            check_epsilon(True)


class TestBudgetCheck:
    def test_returns_the_largest_linf_distance(self) -> None:
        images = torch.full((2, 1, 28, 28), 0.5)
        adversarial = images.clone()
        adversarial[1, 0, 3, 3] += 0.25
        assert check_budget(adversarial, images, 0.3, "x") == pytest.approx(0.25)

    def test_a_perturbation_beyond_epsilon_stops_the_run(self) -> None:
        images = torch.full((1, 1, 28, 28), 0.5)
        with pytest.raises(PerturbationBudgetError, match="exceeds"):
            check_budget(images + 0.11, images, 0.1, "x")

    def test_pixels_outside_the_unit_interval_stop_the_run(self) -> None:
        images = torch.zeros(1, 1, 28, 28)
        with pytest.raises(PerturbationBudgetError, match=r"outside \[0, 1\]"):
            check_budget(images - 0.05, images, 0.1, "x")

    def test_non_finite_pixels_stop_the_run(self) -> None:
        images = torch.zeros(1, 1, 28, 28)
        broken = images.clone()
        broken[0, 0, 0, 0] = torch.nan
        with pytest.raises(PerturbationBudgetError, match="non-finite"):
            check_budget(broken, images, 0.1, "x")

    def test_float32_rounding_of_x_plus_epsilon_is_tolerated(self) -> None:
        images = torch.full((1, 1, 28, 28), 0.7)
        assert check_budget(images + torch.tensor(0.3), images, 0.3, "x") <= 0.3 + 1e-6


class TestProjection:
    def test_clips_to_the_ball_and_the_pixel_range(self) -> None:
        images = torch.tensor([0.0, 0.5, 0.95]).view(1, 1, 1, 3)
        projected = project(torch.tensor([-1.0, 0.9, 2.0]).view(1, 1, 1, 3), images, 0.1)
        assert projected.flatten().tolist() == pytest.approx([0.0, 0.6, 1.0])
