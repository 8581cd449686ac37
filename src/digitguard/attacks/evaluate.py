"""Robust accuracy: run an attack at each budget ε over a labelled set and count what it breaks.

Definitions used throughout (and in every report):

* clean accuracy — the fraction of images the model classifies correctly as they are;
* robust accuracy at ε — the fraction of images classified correctly *and* still classified
  correctly after the attack at ε (an image the model already gets wrong is not robust);
* attack success rate at ε — among the images classified correctly, the fraction the attack flips.

So ``robust_accuracy = clean_accuracy × (1 − attack_success_rate)``. Every adversarial batch is
checked against its budget first (:func:`~digitguard.attacks.base.check_budget`): an attack
that leaves the ε-ball or [0, 1] stops the run instead of producing numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from digitguard.attacks.base import Attack, Setting, check_budget, check_epsilon
from digitguard.errors import AttackError, RefereeDisagreementError

REFEREE_TOLERANCE_POINTS = 0.3


@dataclass(frozen=True)
class EpsilonResult:
    eps: float
    robust_accuracy: float
    attack_success_rate: float
    robust_correct: int
    flipped: int
    max_perturbation: float  # the largest L∞ distance measured, ≤ ε
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "eps": self.eps,
            "robust_accuracy": self.robust_accuracy,
            "attack_success_rate": self.attack_success_rate,
            "robust_correct": self.robust_correct,
            "flipped": self.flipped,
            "max_perturbation": self.max_perturbation,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class RobustnessReport:
    attack: str
    norm: str
    settings: dict[str, Setting]
    samples: int
    clean_correct: int
    clean_accuracy: float
    results: tuple[EpsilonResult, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "attack": self.attack,
            "norm": self.norm,
            "settings": dict(self.settings),
            "samples": self.samples,
            "clean_correct": self.clean_correct,
            "clean_accuracy": self.clean_accuracy,
            "results": [result.to_dict() for result in self.results],
        }


@dataclass(frozen=True)
class Examples:
    """A few originally-correct images and what the attack made of them, for the example grid."""

    images: torch.Tensor  # (k, 1, 28, 28)
    labels: torch.Tensor  # (k,)
    epsilons: tuple[float, ...]
    adversarial: tuple[torch.Tensor, ...]  # one (k, 1, 28, 28) per ε
    predictions: tuple[torch.Tensor, ...]  # one (k,) per ε


@dataclass(frozen=True)
class AttackRun:
    report: RobustnessReport
    examples: Examples = field(repr=False)


def predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        chunks = [model(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.long)


def evaluate_attack(
    model: nn.Module,
    attack_for: Callable[[float], Attack],
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilons: Sequence[float],
    *,
    batch_size: int = 500,
    examples: int = 8,
    clock: Callable[[], float] = time.perf_counter,
) -> AttackRun:
    """Attack ``images`` (``(n, 1, 28, 28)`` in [0, 1]) at every ε and report clean and robust accuracy.

    The grid examples are the first ``examples`` images the model classifies correctly.
    """
    clean_correct = _clean_correct(model, images, labels, batch_size)
    shown = torch.nonzero(clean_correct).flatten()[:examples]
    results, adversarial_shown, predictions_shown = [], [], []
    name, norm, settings = "", "", {}
    for eps in (check_epsilon(eps) for eps in epsilons):
        attack = attack_for(eps)
        result, adversarial = _measure(attack, images, labels, clean_correct, batch_size, clock)
        name, norm, settings = attack.name, attack.norm, attack.settings()  # after: may hold counts
        results.append(result)
        adversarial_shown.append(adversarial[shown])
        predictions_shown.append(predict(model, adversarial[shown], batch_size))
    report = RobustnessReport(
        attack=name,
        norm=norm,
        settings=settings,
        samples=len(images),
        clean_correct=int(clean_correct.sum()),
        clean_accuracy=float(clean_correct.double().mean()),
        results=tuple(results),
    )
    shown_examples = Examples(
        images=images[shown],
        labels=labels[shown],
        epsilons=tuple(result.eps for result in results),
        adversarial=tuple(adversarial_shown),
        predictions=tuple(predictions_shown),
    )
    return AttackRun(report, shown_examples)


@dataclass(frozen=True)
class EpsilonSearch:
    """Where robust accuracy crosses a target: the two closest budgets tried on either side of it."""

    target_accuracy: float
    above: EpsilonResult  # the largest ε tried whose robust accuracy is still above the target
    at_or_below: EpsilonResult  # the smallest ε tried whose robust accuracy is at or below it
    evaluations: tuple[EpsilonResult, ...]  # every ε the search measured, in order

    def to_dict(self) -> dict[str, object]:
        return {
            "target_accuracy": self.target_accuracy,
            "above": self.above.to_dict(),
            "at_or_below": self.at_or_below.to_dict(),
            "evaluations": [result.to_dict() for result in self.evaluations],
        }


def search_epsilon(
    model: nn.Module,
    attack_for: Callable[[float], Attack],
    images: torch.Tensor,
    labels: torch.Tensor,
    target_accuracy: float,
    *,
    known: Sequence[EpsilonResult] = (),
    tolerance: float = 1e-3,
    batch_size: int = 500,
    clock: Callable[[], float] = time.perf_counter,
) -> EpsilonSearch:
    """Bisect ε until the budgets on both sides of ``target_accuracy`` are within ``tolerance``.

    Assumes robust accuracy does not rise with ε (true of FGSM and PGD in practice, not in
    principle). ``known`` results from an earlier run on the same images narrow the first bracket.
    """
    clean_correct = _clean_correct(model, images, labels, batch_size)
    if float(clean_correct.double().mean()) <= target_accuracy:
        raise AttackError(f"clean accuracy is already at or below the target {target_accuracy}")
    evaluations: list[EpsilonResult] = []

    def measure(eps: float) -> EpsilonResult:
        result, _ = _measure(attack_for(eps), images, labels, clean_correct, batch_size, clock)
        evaluations.append(result)
        return result

    above = [r for r in known if r.robust_accuracy > target_accuracy]
    below = [r for r in known if r.robust_accuracy <= target_accuracy] or [measure(1.0)]
    if below[0].eps == 1.0 and below[0].robust_accuracy > target_accuracy:
        raise AttackError(f"robust accuracy stays above {target_accuracy} up to ε = 1")
    high = min(below, key=lambda r: r.eps)
    low = max((r for r in above if r.eps < high.eps), key=lambda r: r.eps, default=None)
    low_eps = low.eps if low is not None else 0.0
    while high.eps - low_eps > tolerance:
        middle = measure(round((low_eps + high.eps) / 2, 6))
        if middle.robust_accuracy > target_accuracy:
            low, low_eps = middle, middle.eps
        else:
            high = middle
    if low is None:
        raise AttackError(f"robust accuracy is at or below {target_accuracy} already at ε = {high.eps}")
    return EpsilonSearch(target_accuracy, low, high, tuple(evaluations))


def _clean_correct(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> torch.Tensor:
    if len(images) == 0:
        raise ValueError("cannot attack an empty set")
    if model.training:
        raise ValueError("the model must be in eval mode: dropout would make every number random")
    return predict(model, images, batch_size) == labels


def _measure(
    attack: Attack,
    images: torch.Tensor,
    labels: torch.Tensor,
    clean_correct: torch.Tensor,
    batch_size: int,
    clock: Callable[[], float],
) -> tuple[EpsilonResult, torch.Tensor]:
    started = clock()
    correct, batches, largest = [], [], 0.0
    for start in range(0, len(images), batch_size):
        batch, batch_labels = images[start : start + batch_size], labels[start : start + batch_size]
        adversarial = attack(batch, batch_labels)
        largest = max(largest, check_budget(adversarial, batch, attack.eps, attack.name))
        with torch.no_grad():
            correct.append(attack.model(adversarial).argmax(1) == batch_labels)
        batches.append(adversarial)
    adversarial_correct = torch.cat(correct)
    flipped = int((clean_correct & ~adversarial_correct).sum())
    robust = int((clean_correct & adversarial_correct).sum())
    result = EpsilonResult(
        eps=attack.eps,
        robust_accuracy=robust / len(images),
        attack_success_rate=flipped / max(int(clean_correct.sum()), 1),
        robust_correct=robust,
        flipped=flipped,
        max_perturbation=largest,
        seconds=round(clock() - started, 3),
    )
    return result, torch.cat(batches)


@dataclass(frozen=True)
class RefereeComparison:
    eps: float
    native_robust_accuracy: float
    art_robust_accuracy: float
    difference_points: float  # |native − ART| in percentage points

    def to_dict(self) -> dict[str, float]:
        return {
            "eps": self.eps,
            "native_robust_accuracy": self.native_robust_accuracy,
            "art_robust_accuracy": self.art_robust_accuracy,
            "difference_points": self.difference_points,
        }


@dataclass(frozen=True)
class RefereeReport:
    attack: str
    samples: int
    tolerance_points: float
    native_settings: dict[str, Setting]
    comparisons: tuple[RefereeComparison, ...]

    @property
    def agreed(self) -> bool:
        return all(c.difference_points <= self.tolerance_points for c in self.comparisons)

    def to_dict(self) -> dict[str, object]:
        return {
            "attack": self.attack,
            "samples": self.samples,
            "tolerance_points": self.tolerance_points,
            "native_settings": dict(self.native_settings),
            "agreed": self.agreed,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }

    def check(self) -> None:
        """Raise :class:`RefereeDisagreementError` if any ε differs by more than the tolerance."""
        worst = max(self.comparisons, key=lambda c: c.difference_points)
        if not self.agreed:
            raise RefereeDisagreementError(
                f"native {self.attack} and ART's disagree at ε = {worst.eps}: robust accuracy "
                f"{worst.native_robust_accuracy:.4f} vs {worst.art_robust_accuracy:.4f} "
                f"({worst.difference_points:.2f} points > {self.tolerance_points})"
            )


def compare_with_referee(
    native: RobustnessReport, art: RobustnessReport, tolerance_points: float = REFEREE_TOLERANCE_POINTS
) -> RefereeReport:
    """Pair two reports over the same images and budgets, ε by ε."""
    if native.samples != art.samples or [r.eps for r in native.results] != [r.eps for r in art.results]:
        raise ValueError("the referee must attack the same images at the same budgets")
    comparisons = tuple(
        RefereeComparison(
            eps=mine.eps,
            native_robust_accuracy=mine.robust_accuracy,
            art_robust_accuracy=theirs.robust_accuracy,
            difference_points=round(abs(mine.robust_accuracy - theirs.robust_accuracy) * 100, 6),
        )
        for mine, theirs in zip(native.results, art.results, strict=True)
    )
    return RefereeReport(native.attack, native.samples, tolerance_points, native.settings, comparisons)
