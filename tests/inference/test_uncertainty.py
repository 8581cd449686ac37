"""Ensembles, expected calibration error and the coverage–accuracy curve."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from digitguard.inference.uncertainty import Ensemble, coverage_accuracy, expected_calibration_error


class Constant(nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(images), -1)


def test_the_ensemble_averages_probabilities_and_returns_their_log() -> None:
    a, b = Constant([0.0, math.log(3.0)]), Constant([math.log(3.0), 0.0])  # p = (.25, .75), (.75, .25)
    out = Ensemble([a, b])(torch.zeros(2, 1, 28, 28))
    assert torch.allclose(torch.softmax(out, 1), torch.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="at least two"):
        Ensemble([a])


def test_a_perfectly_calibrated_predictor_has_zero_ece_and_an_overconfident_one_does_not() -> None:
    labels = torch.tensor([0, 0, 0, 1])  # predicting class 0 with 0.75 is right 3 times in 4
    calibrated = torch.tensor([[0.75, 0.25]] * 4)
    assert expected_calibration_error(calibrated, labels).ece == pytest.approx(0.0)
    overconfident = torch.tensor([[0.99, 0.01]] * 4)
    report = expected_calibration_error(overconfident, labels)
    assert report.ece == pytest.approx(0.24)
    assert report.bins == [{"lower": pytest.approx(14 / 15), "upper": 1.0, "count": 4,
                            "confidence": pytest.approx(0.99), "accuracy": 0.75}]  # fmt: skip
    with pytest.raises(ValueError):
        expected_calibration_error(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))


def test_raising_the_threshold_trades_coverage_for_accuracy() -> None:
    probabilities = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.55, 0.45], [0.9, 0.1]])
    labels = torch.tensor([0, 1, 0, 0])
    curve = coverage_accuracy(probabilities, labels, [0.0, 0.58, 0.99])
    assert [(p["coverage"], p["accuracy"]) for p in curve] == [
        (1.0, 0.75),
        (0.75, pytest.approx(2 / 3)),
        (0.0, 1.0),
    ]
