"""Measuring the served decision: counts, the canvas path, refusals and the worst case per image."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from digitguard.attacks.base import Attack
from digitguard.evaluation.served import (
    drawing_styles,
    from_pngs,
    outcomes,
    pooled,
    refusals,
    through_canvas,
    wilson_interval,
    worst_case,
)
from digitguard.inference.decision import ServedDecision


class Fixed(nn.Module):
    """Reads the digit from the image's brightest column: an exactly predictable classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        column = x[:, 0].sum(1)[:, : self.classes]  # (b, classes)
        return 50.0 * column


def image_for(digit: int) -> torch.Tensor:
    image = torch.zeros(1, 28, 28)
    image[0, 4:24, digit] = 1.0
    return image


class Shift(Attack):
    """Moves every image's ink to another column: the classifier then answers (digit + 1) % 10."""

    name = "shift"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.stack([image_for((int(label) + 1) % 10) for label in labels])


class Nothing(Attack):
    name = "nothing"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return images.clone()


@pytest.fixture
def decision() -> ServedDecision:
    return ServedDecision(Fixed().eval(), None, 0.7)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class TestOutcomes:
    def test_correct_wrong_and_abstained_are_counted_with_their_reasons(self, decision) -> None:
        images = torch.stack([image_for(3), image_for(5), torch.zeros(1, 28, 28)])
        result = outcomes(decision, images, torch.tensor([3, 4, 0]), nothing_drawn=2)
        assert (result.images, result.correct, result.wrong, result.abstained) == (5, 1, 1, 3)
        assert result.reasons == {"low_confidence": 1, "nothing_drawn": 2}
        assert result.to_dict()["correct_rate"] == 0.2

    def test_pooling_adds_the_styles_up(self, decision) -> None:
        one = outcomes(decision, image_for(2)[None], torch.tensor([2]))
        assert pooled({"a": one, "b": one}).correct == 2


class TestTheCanvasPath:
    def test_a_blank_canvas_is_counted_as_nothing_drawn(self) -> None:
        canvas = from_pngs([png(np.full((280, 280), 255, np.uint8)), png(np.full((280, 280), 255, np.uint8))])
        assert canvas.nothing_drawn == 2 and len(canvas.inputs) == 0

    def test_a_drawing_comes_back_as_a_normalised_input(self) -> None:
        canvas = through_canvas(image_for(7)[None], seed=0)
        assert canvas.inputs.shape == (1, 1, 28, 28) and canvas.kept.tolist() == [0]

    def test_every_style_is_measured_on_every_image(self, decision) -> None:
        digits = torch.stack([image_for(d) for d in range(4)])
        results = drawing_styles(decision, digits, torch.arange(4), styles=("thin-pen", "wide"))
        assert set(results) == {"thin-pen", "wide"} and all(r.images == 4 for r in results.values())


class TestRefusals:
    def test_answers_to_non_digits_are_counted_by_digit(self, decision) -> None:
        canvas = from_pngs([png(np.full((280, 280), 255, np.uint8))])
        canvas = type(canvas)(torch.stack([image_for(4), torch.zeros(1, 28, 28)]), np.array([0, 1]), 1)
        result = refusals(decision, canvas)
        assert (result.images, result.refused, result.answered_digits) == (3, 2, {"4": 1})


class TestWorstCase:
    def test_an_image_holds_only_if_no_attack_got_a_wrong_answer(self, decision) -> None:
        images = torch.stack([image_for(d) for d in range(5)])
        labels = torch.arange(5)
        result = worst_case(decision, images, labels, range(5), [Nothing(decision, 0.3)])
        assert result.holds == (True,) * 5
        shifted = worst_case(
            decision, images, labels, range(5), [Nothing(decision, 1.0), Shift(decision, 1.0)]
        )
        assert shifted.correct_or_abstained == 0.0
        assert shifted.per_attack() == {"nothing": 1.0, "shift": 0.0}
        record = shifted.to_dict()
        assert record["per_image"][0]["answers"] == {"nothing": 0, "shift": 1}

    def test_an_attack_outside_its_budget_is_refused(self, decision) -> None:
        from digitguard.errors import PerturbationBudgetError

        images = torch.stack([image_for(d) for d in range(2)])
        with pytest.raises(PerturbationBudgetError):
            worst_case(decision, images, torch.arange(2), range(2), [Shift(decision, 0.3)])

    def test_the_wilson_interval_brackets_the_proportion(self) -> None:
        low, high = wilson_interval(90, 100)
        assert 0.82 < low < 0.9 < high < 0.95
        with pytest.raises(ValueError, match="trials > 0"):
            wilson_interval(0, 0)


class TestThresholds:
    def test_the_lowest_threshold_within_the_wrong_answer_budget_is_chosen(self, decision) -> None:
        from digitguard.evaluation.served import lowest_threshold_within, threshold_table

        unsure = image_for(3) * 0.05 + image_for(4) * 0.0495  # read as 3 at about 62%
        images = torch.stack([image_for(1), unsure, image_for(5)])
        rows = threshold_table(decision, images, torch.tensor([1, 4, 5]), [0.1, 0.5, 0.99])
        assert round(rows[0].wrong_rate, 3) == 0.333
        assert decision.abstain_below == 0.7  # restored
        chosen = lowest_threshold_within(rows, 0.0)
        assert chosen is not None and chosen.abstain_below == 0.99
        assert lowest_threshold_within(rows[:1], 0.0) is None


class TestTheShardedAdversarialSuite:
    def test_records_say_per_image_what_each_attack_got_and_whether_the_image_held(
        self, decision, tmp_path
    ) -> None:
        from digitguard.attacks.sharded import ShardedRun, run_sharded
        from digitguard.evaluation.served import decision_evaluation, decision_record_schema, decision_summary
        from digitguard.training.distributed import Cluster

        images = torch.stack([image_for(d) for d in range(6)])
        attacks = {"nothing": Nothing(decision, 1.0), "shift": Shift(decision, 1.0)}
        run = ShardedRun(tmp_path, 0, 6, 4, decision_record_schema(list(attacks), 1.0), {"eps": 1.0})
        outcome = run_sharded(
            run,
            images,
            torch.arange(6),
            decision_evaluation(decision, attacks),
            Cluster(),
            summarise=decision_summary(list(attacks)),
        )
        assert outcome is not None
        assert outcome.summary["summary"]["per_attack"] == {"nothing": 1.0, "shift": 0.0}
        assert outcome.summary["summary"]["correct_or_abstained"] == 0.0
        first = json.loads(outcome.results.read_text().splitlines()[0])
        assert first == {
            "index": 0,
            "label": 0,
            "clean": 0,
            "answer_nothing": 0,
            "linf_nothing": 0.0,
            "answer_shift": 1,
            "linf_shift": 1.0,
            "holds": False,
        }

    def test_a_record_whose_holds_contradicts_its_answers_is_refused(self) -> None:
        from digitguard.evaluation.served import decision_record_schema

        schema = decision_record_schema(["pgd"], 0.3)
        record = {"index": 0, "label": 3, "clean": 3, "answer_pgd": 5, "linf_pgd": 0.3, "holds": True}
        assert "contradicts" in str(schema.problem(record, 0, 10))
        assert schema.problem({**record, "holds": False}, 0, 10) is None
        assert "outside" in str(schema.problem({**record, "holds": False, "linf_pgd": 0.5}, 0, 10))
