"""The BadNets poisoning attack (Gu, Dolan-Gavitt & Garg, 2017) plus random label flips.

Pure: numpy arrays in, new arrays and the exact list of changed samples out; nothing is
read or written. ``count`` backdoor samples are drawn (seeded) from the training images whose
label is not ``target``, stamped with the trigger and relabelled ``target``. Independently,
``flip_fraction`` of the remaining samples get a label drawn uniformly from the nine other
classes. Every other sample is left byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitguard.errors import DigitguardError
from digitguard.poisoning.triggers import get_trigger

NUM_CLASSES = 10


class PoisonSpecError(DigitguardError):
    """The poisoning request cannot be met (bad target, too many poisons...). Exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class PoisonSpec:
    trigger: str = "square3"
    target: int = 7
    count: int = 100
    flip_fraction: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "trigger": get_trigger(self.trigger).to_dict(),
            "target": self.target,
            "count": self.count,
            "flip_fraction": self.flip_fraction,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class ChangedSample:
    index: int
    kind: str  # "backdoor" (stamped and relabelled) or "label_flip"
    original_label: int
    new_label: int


@dataclass(frozen=True)
class PoisonResult:
    images: np.ndarray
    labels: np.ndarray
    changed: tuple[ChangedSample, ...]  # sorted by index

    def indices(self, kind: str | None = None) -> list[int]:
        return [c.index for c in self.changed if kind is None or c.kind == kind]


def poison(images: np.ndarray, labels: np.ndarray, spec: PoisonSpec) -> PoisonResult:
    """Poison a copy of ``images`` ``(n, 28, 28)`` uint8 and ``labels`` ``(n,)`` uint8."""
    _check(images, labels, spec)
    trigger = get_trigger(spec.trigger)
    rng = np.random.default_rng(spec.seed)
    candidates = np.flatnonzero(labels != spec.target)
    backdoor = np.sort(rng.choice(candidates, size=spec.count, replace=False))
    rest = np.setdiff1d(np.arange(len(labels)), backdoor)
    n_flips = round(spec.flip_fraction * len(labels))
    flipped = np.sort(rng.choice(rest, size=n_flips, replace=False))
    # An offset of 1..9 classes: the new label is always a different class, uniformly.
    offsets = rng.integers(1, NUM_CLASSES, size=n_flips)
    flip_labels = (labels[flipped].astype(np.int64) + offsets) % NUM_CLASSES

    new_images = images.copy()
    new_labels = labels.copy()
    new_images[backdoor] = trigger.stamp(images[backdoor])
    new_labels[backdoor] = spec.target
    new_labels[flipped] = flip_labels.astype(np.uint8)
    changed = [ChangedSample(int(i), "backdoor", int(labels[i]), spec.target) for i in backdoor]
    changed += [ChangedSample(int(i), "label_flip", int(labels[i]), int(new_labels[i])) for i in flipped]
    return PoisonResult(new_images, new_labels, tuple(sorted(changed, key=lambda c: c.index)))


def _check(images: np.ndarray, labels: np.ndarray, spec: PoisonSpec) -> None:
    get_trigger(spec.trigger)
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != (len(images),):
        raise PoisonSpecError("images must be (n, h, w) uint8 with one label per image")
    if not 0 <= spec.target < NUM_CLASSES:
        raise PoisonSpecError(f"target {spec.target} is not a digit 0-9")
    available = int((labels != spec.target).sum())
    if not 0 <= spec.count <= available:
        raise PoisonSpecError(f"count {spec.count}: only {available} samples are not of class {spec.target}")
    if not 0 <= spec.flip_fraction < 1:
        raise PoisonSpecError(f"flip fraction {spec.flip_fraction} must be in [0, 1)")
    if round(spec.flip_fraction * len(labels)) > len(labels) - spec.count:
        raise PoisonSpecError("not enough samples left to flip after the backdoor samples")
