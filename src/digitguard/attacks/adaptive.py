"""An adaptive attack on the classifier and the feature-squeezing detector together.

A detector is only worth what it keeps under an attacker who knows it (Carlini & Wagner,
"Adversarial Examples Are Not Easily Detected", AISec 2017; Tramèr, Carlini, Brendel & Madry,
"On Adaptive Attacks to Adversarial Example Defenses", NeurIPS 2020). This attack knows the
squeezers and the threshold τ. It takes L∞ PGD steps on

    Σ_views CE(f(view), y)  −  κ · max(0, score(x) − margin·τ)          (untargeted)
    −Σ_views CE(f(view), t) −  κ · max(0, score(x) − margin·τ)          (toward t, the runner-up)

where the views are the input, its binarisation (straight-through gradient: BPDA, Athalye,
Carlini & Wagner, ICML 2018) and its 2×2 median filter — so that all three are misclassified
alike and the detector's disagreement stays under τ. It keeps, per image, the first iterate of
any restart that evades: misclassified *and* scoring at most τ. An image with no such iterate
keeps its last one (which is then classified correctly, flagged, or both).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.attacks.base import Attack, Setting, project, seeded_uniform
from digitguard.defences.squeeze import scores_from_logits, squeeze_forward, squeezed_views
from digitguard.errors import AttackError

MODES = ("untargeted", "runner-up")


class SqueezeAwarePGD(Attack):
    """PGD against model + feature-squeezing detector. Arguments (defaults): ``model``, ``eps``,
    ``threshold`` (the detector's τ); ``steps=100``; ``step_size=None`` (2.5·ε/steps);
    ``restarts=1`` per mode; ``modes=MODES``; ``penalty=10`` (κ); ``margin=0.8``; ``seed=0``.
    Random starts are seeded per image (seed, mode, restart, image bytes): batch-independent."""

    name = "squeeze-aware-pgd"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        threshold: float,
        steps: int = 100,
        step_size: float | None = None,
        restarts: int = 1,
        modes: tuple[str, ...] = MODES,
        penalty: float = 10.0,
        margin: float = 0.8,
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps)
        if steps < 1 or restarts < 1:
            raise AttackError(f"the adaptive attack needs steps and restarts ≥ 1, got {steps} and {restarts}")
        if not modes or any(mode not in MODES for mode in modes):
            raise AttackError(f"adaptive attack modes must be among {MODES}, got {modes}")
        if not 0 <= threshold <= 2:
            raise AttackError(f"the detector threshold must be in [0, 2], got {threshold}")
        self.threshold, self.steps, self.restarts, self.modes = threshold, steps, restarts, modes
        self.step_size = step_size if step_size is not None else 2.5 * self.eps / steps
        self.penalty, self.margin, self.seed = penalty, margin, seed

    def settings(self) -> dict[str, Setting]:
        return {
            "steps": self.steps,
            "step_size": self.step_size,
            "restarts": self.restarts,
            "modes": ",".join(self.modes),
            "penalty": self.penalty,
            "margin": self.margin,
            "threshold": self.threshold,
            "seed": self.seed,
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        result = images.clone()
        evaded = self._evades(images, labels)
        last = images
        for mode in self.modes:
            for restart in range(self.restarts):
                if bool(evaded.all()):
                    return result
                last = self._run(images, labels, mode, restart, result, evaded)
        result[~evaded] = last[~evaded]
        return result

    def _evades(self, candidates: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            output = squeeze_forward(self.model, candidates)
        return (output.logits.argmax(1) != labels) & (output.scores <= self.threshold)

    def _run(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mode: str,
        restart: int,
        result: torch.Tensor,
        evaded: torch.Tensor,
    ) -> torch.Tensor:
        """One restart; writes each newly evading image's iterate into ``result``, marks ``evaded``
        and returns the last iterate."""
        adversarial = (images + self._random_start(images, mode, restart)).clamp(0.0, 1.0)
        target = self._runner_up(images, labels) if mode == "runner-up" else labels
        for _ in range(self.steps):
            gradient, fooled_now = self._step_gradient(adversarial, labels, target, mode)
            fresh = fooled_now & ~evaded
            result[fresh], evaded[fresh] = adversarial[fresh], True
            adversarial = project(adversarial + self.step_size * gradient.sign(), images, self.eps)
        fresh = self._evades(adversarial, labels) & ~evaded
        result[fresh], evaded[fresh] = adversarial[fresh], True
        return adversarial

    def _step_gradient(
        self, adversarial: torch.Tensor, labels: torch.Tensor, target: torch.Tensor, mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = adversarial.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            # Straight-through binarisation: its forward value is exact, so ``fooled`` is too.
            logits = self.model(squeezed_views(inputs, straight_through=True))
            views = logits.view(3, len(inputs), -1)
            cross_entropy = sum(F.cross_entropy(view, target, reduction="none") for view in views)
            scores = scores_from_logits(logits)
            objective = cross_entropy if mode == "untargeted" else -cross_entropy
            objective = objective - self.penalty * torch.relu(scores - self.margin * self.threshold)
            (gradient,) = torch.autograd.grad(objective.sum(), inputs)
        fooled = (views[0].detach().argmax(1) != labels) & (scores.detach() <= self.threshold)
        return gradient, fooled

    def _runner_up(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = self.model(images).clone()
        logits[torch.arange(len(labels)), labels] = -torch.inf
        return logits.argmax(1)

    def _random_start(self, images: torch.Tensor, mode: str, restart: int) -> torch.Tensor:
        return seeded_uniform(images, self.eps, f"digitguard-squeeze-pgd:{self.seed}:{mode}:{restart}:")
