"""How well a backdoor works: clean accuracy and attack success rate.

Attack success rate (ASR): of the test digits whose true class is not the target, stamped with
the trigger, the fraction the model classifies as the target. Digits of the target class are
left out — classifying a triggered 7 as 7 is no success.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from digitguard.poisoning.triggers import Trigger
from digitguard.training.loop import predict


@dataclass(frozen=True)
class BackdoorReport:
    trigger: str
    target: int
    clean_accuracy: float
    attack_success_rate: float
    triggered_samples: int  # test digits of other classes that were stamped
    per_class_success: tuple[float | None, ...]  # by true class; None for the target

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "per_class_success": list(self.per_class_success)}


def attack_success_rate(predicted: torch.Tensor, labels: torch.Tensor, target: int) -> float:
    """Share of samples with ``labels != target`` that were ``predicted`` as ``target``."""
    others = labels != target
    if not bool(others.any()):
        raise ValueError("no samples of classes other than the target")
    return float((predicted[others] == target).double().mean())


def evaluate_backdoor(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, trigger: Trigger, target: int
) -> BackdoorReport:
    """``images`` ``(n, 28, 28)`` uint8 and ``labels`` ``(n,)``: the clean test set."""
    y = torch.from_numpy(labels.astype(np.int64))
    clean = predict(model, torch.from_numpy(np.array(images)))
    triggered = predict(model, torch.from_numpy(trigger.stamp(images)))
    per_class = tuple(
        None if digit == target else float((triggered[y == digit] == target).double().mean())
        for digit in range(10)
    )
    return BackdoorReport(
        trigger=trigger.name,
        target=target,
        clean_accuracy=float((clean == y).double().mean()),
        attack_success_rate=attack_success_rate(triggered, y, target),
        triggered_samples=int((y != target).sum()),
        per_class_success=per_class,
    )
