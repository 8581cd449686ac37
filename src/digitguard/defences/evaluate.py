"""How well the feature-squeezing detector does: against plain attacks and adaptive ones.

For each attack: robust accuracy of the classifier alone, the detector's true-positive rate on
the adversarial examples that fool the classifier, and the number that counts for a deployed
system that abstains when the detector fires — the share of attacked inputs that are either
classified correctly or flagged; over several attacks, also per image the worst case of them. The
clean false-positive rate comes with it. Pure: tensors and attacks in, frozen results out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from digitguard.attacks.base import Attack, check_budget
from digitguard.defences.squeeze import squeeze_forward

WORST_CASE = "worst-case"  # the row that takes, per image, the strongest of several attacks


@dataclass(frozen=True)
class DetectionResult:
    attack: str
    eps: float
    images: int
    robust_accuracy: float  # classifier alone
    fooled: int  # adversarial examples the classifier gets wrong
    flagged_of_fooled: float  # the detector's true-positive rate on those
    correct_or_flagged: float  # classified correctly, or flagged (abstained)
    flagged_overall: float
    settings: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__}


def _outcomes(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threshold: float, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    correct, flagged = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            output = squeeze_forward(model, images[start : start + batch_size])
            correct.append(output.logits.argmax(1) == labels[start : start + batch_size])
            flagged.append(output.scores > threshold)
    return torch.cat(correct), torch.cat(flagged)


def clean_flag_rate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threshold: float, batch_size: int = 500
) -> dict[str, float]:
    """On clean images: the share flagged (false positives), accuracy, and accuracy of the unflagged."""
    correct, flagged = _outcomes(model, images, labels, threshold, batch_size)
    kept = ~flagged
    return {
        "images": len(images),
        "flagged": float(flagged.float().mean()),
        "accuracy": float(correct.float().mean()),
        "accuracy_of_unflagged": float(correct[kept].float().mean()) if bool(kept.any()) else 0.0,
    }


def evaluate_detection(
    model: nn.Module,
    make_attack: Callable[[float], Attack],
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    threshold: float,
    batch_size: int = 500,
) -> DetectionResult:
    """Attack ``images`` at ``eps`` in batches and score classifier and detector on the results."""
    attack = make_attack(eps)
    adversarial = _attacked(attack, images, labels, eps, batch_size)
    correct, flagged = _outcomes(model, adversarial, labels, threshold, batch_size)
    return _result(attack.name, eps, correct, flagged, dict(attack.settings()))


def evaluate_worst_case(
    model: nn.Module,
    make_attacks: Sequence[Callable[[float], Attack]],
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    threshold: float,
    batch_size: int = 500,
) -> tuple[DetectionResult, ...]:
    """Each attack's result, then one more, ``worst-case``: per image, the attacked version that does
    the system most harm — one that evades (misclassified and not flagged) over one that is
    misclassified and flagged over one classified correctly, the earlier attack among equals. Its
    correct-or-flagged is the share of images that no attack gets past the detector."""
    results, names = [], []
    harm = torch.full((len(images),), -1)
    worst_correct = torch.ones(len(images), dtype=torch.bool)
    worst_flagged = torch.zeros(len(images), dtype=torch.bool)
    for make_attack in make_attacks:
        attack = make_attack(eps)
        adversarial = _attacked(attack, images, labels, eps, batch_size)
        correct, flagged = _outcomes(model, adversarial, labels, threshold, batch_size)
        results.append(_result(attack.name, eps, correct, flagged, dict(attack.settings())))
        names.append(attack.name)
        this_harm = (~correct).long() + (~correct & ~flagged).long()
        worse = this_harm > harm
        harm = torch.where(worse, this_harm, harm)
        worst_correct = torch.where(worse, correct, worst_correct)
        worst_flagged = torch.where(worse, flagged, worst_flagged)
    worst = _result(WORST_CASE, eps, worst_correct, worst_flagged, {"attacks": ",".join(names)})
    return (*results, worst)


def _attacked(
    attack: Attack, images: torch.Tensor, labels: torch.Tensor, eps: float, batch_size: int
) -> torch.Tensor:
    adversarial = torch.cat(
        [
            attack(images[start : start + batch_size], labels[start : start + batch_size])
            for start in range(0, len(images), batch_size)
        ]
    )
    check_budget(adversarial, images, eps, attack.name)
    return adversarial


def _result(
    name: str, eps: float, correct: torch.Tensor, flagged: torch.Tensor, settings: dict[str, object]
) -> DetectionResult:
    fooled = ~correct
    return DetectionResult(
        attack=name,
        eps=eps,
        images=len(correct),
        robust_accuracy=float(correct.float().mean()),
        fooled=int(fooled.sum()),
        flagged_of_fooled=float(flagged[fooled].float().mean()) if bool(fooled.any()) else 1.0,
        correct_or_flagged=float((correct | flagged).float().mean()),
        flagged_overall=float(flagged.float().mean()),
        settings=settings,
    )
