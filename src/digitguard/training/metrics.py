"""Classification metrics: accuracy, per-class accuracy, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import torch

NUM_CLASSES = 10


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    per_class_accuracy: tuple[float, ...]
    # rows: true class, columns: predicted; a model with a "not a digit" class (the served decision's
    # gate) gets an 11th column for the test digits it called not a digit.
    confusion_matrix: tuple[tuple[int, ...], ...]
    samples: int

    def to_dict(self) -> dict[str, object]:
        return {
            "accuracy": self.accuracy,
            "per_class_accuracy": list(self.per_class_accuracy),
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "samples": self.samples,
        }


def evaluate_predictions(predicted: torch.Tensor, labels: torch.Tensor) -> Evaluation:
    if len(labels) == 0:
        raise ValueError("cannot evaluate on an empty set")
    columns = max(NUM_CLASSES, int(predicted.max()) + 1 if len(predicted) else NUM_CLASSES)
    confusion = torch.zeros(NUM_CLASSES, columns, dtype=torch.long)
    confusion.index_put_(
        (labels.long(), predicted.long()), torch.ones_like(labels, dtype=torch.long), accumulate=True
    )
    per_class_total = confusion.sum(1).clamp(min=1)
    per_class = (confusion[:, :NUM_CLASSES].diag().double() / per_class_total).tolist()
    return Evaluation(
        accuracy=float(confusion[:, :NUM_CLASSES].diag().sum()) / len(labels),
        per_class_accuracy=tuple(per_class),
        confusion_matrix=tuple(tuple(row) for row in confusion.tolist()),
        samples=len(labels),
    )
