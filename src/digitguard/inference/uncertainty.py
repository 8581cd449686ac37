"""Uncertainty: deep ensembles, calibration error and the coverage–accuracy trade of abstention.

- :class:`Ensemble` averages the probabilities of independently trained members
  (Lakshminarayanan, Pritzel & Blundell, "Simple and Scalable Predictive Uncertainty Estimation
  using Deep Ensembles", NeurIPS 2017). Its output is the log of the mean probabilities, so it
  drops in wherever logits are expected (softmax gives the mean back; attacks see the ensemble).
- :func:`expected_calibration_error`: the gap between confidence and accuracy, averaged over
  equal-width confidence bins weighted by their size (Guo et al., ICML 2017).
- :func:`coverage_accuracy`: for each abstention threshold, the share of inputs answered and
  the accuracy on those — what the server's ``ABSTAIN_BELOW`` trades.

Pure: tensors in, numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

DEFAULT_BINS = 15


class Ensemble(nn.Module):
    """Mean probabilities of ``members`` (each mapping images to logits), returned as log-probabilities."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([torch.softmax(member(images), dim=1) for member in self.members])
        return probabilities.mean(dim=0).clamp_min(1e-12).log()


@dataclass(frozen=True)
class CalibrationReport:
    ece: float
    bins: list[dict[str, float]]  # per non-empty bin: lower, upper, count, confidence, accuracy

    def to_dict(self) -> dict[str, object]:
        return {"ece": self.ece, "bins": self.bins}


def expected_calibration_error(
    probabilities: torch.Tensor, labels: torch.Tensor, bins: int = DEFAULT_BINS
) -> CalibrationReport:
    """ECE of top-1 confidences with ``bins`` equal-width bins on (0, 1]."""
    if len(probabilities) == 0 or len(probabilities) != len(labels):
        raise ValueError("need as many probability rows as labels, and at least one")
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    total, ece, rows = len(labels), 0.0, []
    for lower, upper in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        inside = (confidence.double() > lower) & (confidence.double() <= upper)
        count = int(inside.sum())
        if count == 0:
            continue
        mean_confidence = float(confidence[inside].double().mean())
        accuracy = float(correct[inside].mean())
        ece += count / total * abs(mean_confidence - accuracy)
        rows.append(
            {
                "lower": lower,
                "upper": upper,
                "count": count,
                "confidence": mean_confidence,
                "accuracy": accuracy,
            }
        )
    return CalibrationReport(ece, rows)


def coverage_accuracy(
    probabilities: torch.Tensor, labels: torch.Tensor, thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """Per threshold τ: coverage (share with confidence ≥ τ, i.e. answered) and their accuracy."""
    confidence, predicted = probabilities.max(dim=1)
    correct = predicted == labels
    curve = []
    for threshold in thresholds:
        answered = confidence >= threshold
        count = int(answered.sum())
        curve.append(
            {
                "threshold": float(threshold),
                "coverage": count / len(labels),
                "accuracy": float(correct[answered].double().mean()) if count else 1.0,
            }
        )
    return curve


def probabilities_of(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Softmax outputs of ``model`` on ``images``, in batches, without gradients."""
    with torch.inference_mode():
        return torch.cat(
            [
                torch.softmax(model(images[i : i + batch_size]), dim=1)
                for i in range(0, len(images), batch_size)
            ]
        )
