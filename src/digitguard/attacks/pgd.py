"""PGD, projected gradient descent with random restarts."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.attacks.base import Attack, Setting, loss_gradient, project, seeded_uniform
from digitguard.errors import AttackError


class PGD(Attack):
    """Projected Gradient Descent — Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning
    Models Resistant to Adversarial Attacks", ICLR 2018 (arXiv:1706.06083).

    Norm L∞, inputs ``(b, 1, 28, 28)`` in [0, 1]. Each restart starts at a uniformly random point
    of the ε-ball (or at the image itself when ``random_start`` is off) and takes ``steps`` signed
    gradient steps of size α, projecting back onto the ε-ball ∩ [0, 1] after each::

        x ← Π(x + α · sign(∇ₓ CE(f(x), y)))

    Like Madry et al.'s and ART's implementations it returns each restart's last iterate; across
    restarts it keeps, per image, the worst case for the model: a misclassified result over a
    correctly classified one, and the higher loss among equals.

    Arguments (defaults): ``model``, ``eps`` in (0, 1]; ``steps=40``; ``step_size=None`` meaning
    α = 2.5·ε/steps (Madry et al.); ``restarts=1``; ``random_start=True``; ``seed=0``.

    Deterministic and independent of batching: an image's random start comes from a generator
    seeded with (seed, restart, SHA-256 of the image's bytes), so the same image gets the same
    start in any batch, at any position.

    Example::

        adversarial = PGD(model, eps=0.3, steps=40, restarts=5, seed=1)(images, labels)
    """

    name = "pgd"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        steps: int = 40,
        step_size: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps)
        if steps < 1:
            raise AttackError(f"PGD needs at least one step, got steps={steps}")
        if restarts < 1:
            raise AttackError(f"PGD needs at least one restart, got restarts={restarts}")
        if restarts > 1 and not random_start:
            raise AttackError("PGD restarts without a random start would all be identical; use random_start")
        if step_size is not None and not 0 < step_size <= 1:
            raise AttackError(f"PGD step size must be in (0, 1], got {step_size}")
        self.steps = steps
        self.step_size = step_size if step_size is not None else 2.5 * self.eps / steps
        self.restarts = restarts
        self.random_start = random_start
        self.seed = seed

    def settings(self) -> dict[str, Setting]:
        return {
            "steps": self.steps,
            "step_size": self.step_size,
            "restarts": self.restarts,
            "random_start": self.random_start,
            "seed": self.seed,
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        best = images.clone()
        best_fooled = torch.zeros(len(images), dtype=torch.bool)
        best_loss = torch.full((len(images),), -torch.inf)
        for restart in range(self.restarts):
            adversarial = self._run(images, labels, restart)
            with torch.no_grad():
                logits = self.model(adversarial)
            fooled = logits.argmax(1) != labels
            loss = F.cross_entropy(logits, labels, reduction="none")
            better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
            best[better] = adversarial[better]
            best_fooled |= fooled
            best_loss = torch.where(better, loss, best_loss)
        return best

    def _run(self, images: torch.Tensor, labels: torch.Tensor, restart: int) -> torch.Tensor:
        adversarial = images.clone()
        if self.random_start:
            adversarial = (images + self._random_start(images, restart)).clamp(0.0, 1.0)
        for _ in range(self.steps):
            step = self.step_size * loss_gradient(self.model, adversarial, labels).sign()
            adversarial = project(adversarial + step, images, self.eps)
        return adversarial

    def _random_start(self, images: torch.Tensor, restart: int) -> torch.Tensor:
        return seeded_uniform(images, self.eps, f"digitguard-pgd:{self.seed}:{restart}:")
