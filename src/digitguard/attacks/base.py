"""The one interface every attack implements, and the checks shared by all of them."""

from __future__ import annotations

import abc
import hashlib
import math
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.errors import InvalidEpsilonError, PerturbationBudgetError

# Float32 rounding of ``x ± ε`` may overshoot by a few ulps; a real violation is orders of magnitude larger.
BUDGET_TOLERANCE = 1e-5

Setting = float | int | str | bool | None


class Attack(abc.ABC):
    """An untargeted L∞ evasion attack on a classifier.

    ``attack(images, labels)`` takes images ``(b, 1, 28, 28)`` as floats in [0, 1] and their true
    labels ``(b,)``, and returns adversarial images of the same shape, each within ``eps`` of its
    original in L∞ and inside [0, 1]. The model must output logits and be in eval mode; the
    attack never changes its parameters or its mode.
    """

    name: ClassVar[str]
    norm: ClassVar[str] = "Linf"

    def __init__(self, model: nn.Module, eps: float) -> None:
        self.model = model
        self.eps = check_epsilon(eps)

    @abc.abstractmethod
    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial versions of ``images``."""

    def settings(self) -> dict[str, Setting]:
        """The attack's parameters other than ε, for reports."""
        return {}


def check_epsilon(eps: float) -> float:
    """``eps`` as a float if it is a finite number in (0, 1], else :class:`InvalidEpsilonError`."""
    if isinstance(eps, bool) or not isinstance(eps, int | float):
        raise InvalidEpsilonError(f"ε must be a number, got {eps!r}")
    if not math.isfinite(eps) or not 0 < eps <= 1:
        raise InvalidEpsilonError(f"ε must be in (0, 1] (pixels are in [0, 1]), got {eps!r}")
    return float(eps)


def parse_epsilons(text: str) -> tuple[float, ...]:
    """Parse a comma-separated list such as ``"0.1,0.2,0.3"`` into distinct budgets, in the order given."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise InvalidEpsilonError(f"expected a comma-separated list of numbers in (0, 1], got {text!r}")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise InvalidEpsilonError(f"ε {part!r} is not a number (in {text!r})") from None
        values.append(check_epsilon(value))
    if len(set(values)) != len(values):
        raise InvalidEpsilonError(f"ε values repeat in {text!r}")
    return tuple(values)


def loss_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∇ₓ of each image's cross-entropy.

    Summed, not averaged over the batch, so that no image's gradient depends on the batch size.
    """
    inputs = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(inputs), labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    return gradient


def project(adversarial: torch.Tensor, images: torch.Tensor, eps: float) -> torch.Tensor:
    """The nearest point to ``adversarial`` in the L∞ ball of radius ``eps`` around ``images`` ∩ [0, 1]."""
    return torch.minimum(torch.maximum(adversarial, images - eps), images + eps).clamp(0.0, 1.0)


def check_budget(adversarial: torch.Tensor, images: torch.Tensor, eps: float, attack: str) -> float:
    """Refuse adversarial images that are outside the ε-ball or [0, 1]; return the largest L∞ distance."""
    if adversarial.shape != images.shape:
        raise PerturbationBudgetError(
            f"{attack}: returned shape {tuple(adversarial.shape)} for inputs {tuple(images.shape)}"
        )
    if not torch.isfinite(adversarial).all():
        raise PerturbationBudgetError(f"{attack}: returned non-finite pixels")
    low, high = float(adversarial.min()), float(adversarial.max())
    if low < -BUDGET_TOLERANCE or high > 1 + BUDGET_TOLERANCE:
        raise PerturbationBudgetError(f"{attack}: pixels outside [0, 1] (min {low}, max {high})")
    distance = float((adversarial - images).abs().amax()) if len(images) else 0.0
    if distance > eps + BUDGET_TOLERANCE:
        raise PerturbationBudgetError(f"{attack}: L∞ perturbation {distance:.6f} exceeds ε = {eps}")
    return distance


def seeded_uniform(images: torch.Tensor, eps: float, prefix: str) -> torch.Tensor:
    """Uniform noise in [−ε, ε] per image, from a generator seeded with ``prefix`` and the image's
    SHA-256: the same image gets the same draw in any batch, at any position."""
    noise = torch.empty_like(images)
    for index, image in enumerate(images):
        digest = hashlib.sha256(prefix.encode() + image.cpu().numpy().tobytes()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        noise[index] = torch.empty(image.shape).uniform_(-eps, eps, generator=generator)
    return noise
