"""Adversarial training objectives — pure torch, no files.

Three ways to train against L∞ perturbations of radius ε (pixels in [0, 1]):

- ``fgsm-rs`` — "fast adversarial training" (Wong, Rice & Kolter, ICLR 2020,
  arXiv:2001.03994): one signed-gradient step of size 1.25·ε from a uniformly random start in
  the ε-ball. About twice the cost of plain training; known to collapse ("catastrophic
  overfitting": robust accuracy against PGD falls to ~0 within an epoch), which is why
  :mod:`digitguard.training.run` stops early on held-out PGD accuracy.
- ``pgd`` — Madry et al. (ICLR 2018, arXiv:1706.06083): ``steps`` projected signed-gradient
  steps of size 2.5·ε/steps from a random start; train on the result.
- ``trades`` — Zhang et al. (ICML 2019, arXiv:1901.08573): clean cross-entropy plus β times the
  KL divergence between the model's outputs on the clean image and on a perturbation found by
  ``steps`` steps that maximise that divergence.

Every random draw comes from the epoch's generator, so a resumed run is reproducible. The
perturbation is found with the model in eval mode (dropout off); the update is in train mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.attacks.base import loss_gradient, project
from digitguard.training.loop import Objective

MODES = ("fgsm-rs", "pgd", "trades")
FGSM_RS_STEP = 1.25  # × ε, Wong et al.'s α
PGD_STEP = 2.5  # × ε / steps, Madry et al.


class AdversarialConfigError(ValueError):
    """An adversarial-training setting breaks a rule (unknown mode, ε outside (0, 1], …)."""


@dataclass(frozen=True)
class AdversarialSettings:
    mode: str
    eps: float
    steps: int = 10
    trades_beta: float = 6.0
    eps_ramp_epochs: int = 0  # grow ε linearly over the first N epochs (0: full ε from the start)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise AdversarialConfigError(f"adversarial mode must be one of {MODES}, not {self.mode!r}")
        if not 0 < self.eps <= 1:
            raise AdversarialConfigError(f"adversarial ε must be in (0, 1], got {self.eps}")
        if self.steps < 1:
            raise AdversarialConfigError(f"adversarial steps must be at least 1, got {self.steps}")
        if self.trades_beta <= 0:
            raise AdversarialConfigError(f"TRADES β must be positive, got {self.trades_beta}")
        if self.eps_ramp_epochs < 0:
            raise AdversarialConfigError("the ε ramp must not be negative")

    def eps_at(self, epoch: int) -> float:
        """ε for ``epoch`` (0-based): ramped linearly, then constant."""
        if self.eps_ramp_epochs == 0:
            return self.eps
        return self.eps * min(1.0, (epoch + 1) / self.eps_ramp_epochs)


def objective(settings: AdversarialSettings, epoch: int) -> Objective:
    """The training objective for ``epoch`` under ``settings``."""
    eps = settings.eps_at(epoch)
    if settings.mode == "fgsm-rs":
        return lambda model, x, y, generator: _on_adversarial(
            model, x, y, _fgsm_rs(model, x, y, eps, generator)
        )
    if settings.mode == "pgd":
        return lambda model, x, y, generator: _on_adversarial(
            model, x, y, _pgd(model, x, y, eps, settings.steps, generator)
        )
    return lambda model, x, y, generator: _trades(model, x, y, eps, settings, generator)


def uniform_start(images: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.rand(images.shape, generator=generator).mul_(2 * eps).sub_(eps)
    return (images + noise).clamp_(0.0, 1.0)


def _in_eval_mode(model: nn.Module, find: Callable[[], torch.Tensor]) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return find().detach()
    finally:
        model.train(was_training)


def _fgsm_rs(model, images, labels, eps: float, generator) -> torch.Tensor:
    def find() -> torch.Tensor:
        start = uniform_start(images, eps, generator)
        step = FGSM_RS_STEP * eps * loss_gradient(model, start, labels).sign()
        return project(start + step, images, eps)

    return _in_eval_mode(model, find)


def _pgd(model, images, labels, eps: float, steps: int, generator) -> torch.Tensor:
    def find() -> torch.Tensor:
        adversarial = uniform_start(images, eps, generator)
        for _ in range(steps):
            step = PGD_STEP * eps / steps * loss_gradient(model, adversarial, labels).sign()
            adversarial = project(adversarial + step, images, eps)
        return adversarial

    return _in_eval_mode(model, find)


def _on_adversarial(model, images, labels, adversarial) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(adversarial)
    return F.cross_entropy(logits, labels), logits


def _trades(model, images, labels, eps: float, settings: AdversarialSettings, generator):
    def find() -> torch.Tensor:
        with torch.no_grad():
            clean_probabilities = F.softmax(model(images), dim=1)
        noise = torch.randn(images.shape, generator=generator).mul_(0.001)
        adversarial = (images + noise).clamp(0.0, 1.0)
        for _ in range(settings.steps):
            adversarial = adversarial.detach().requires_grad_(True)
            with torch.enable_grad():
                divergence = F.kl_div(
                    F.log_softmax(model(adversarial), dim=1), clean_probabilities, reduction="sum"
                )
                (gradient,) = torch.autograd.grad(divergence, adversarial)
            step = PGD_STEP * eps / settings.steps * gradient.sign()
            adversarial = project(adversarial.detach() + step, images, eps)
        return adversarial

    adversarial = _in_eval_mode(model, find)
    logits = model(images)
    robust = F.kl_div(
        F.log_softmax(model(adversarial), dim=1), F.softmax(logits, dim=1), reduction="batchmean"
    )
    return F.cross_entropy(logits, labels) + settings.trades_beta * robust, logits


def robust_accuracy(
    model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, eps: float, steps: int, seed: int = 0
) -> float:
    """Accuracy under PGD-``steps`` (one random start) at ``eps``: the early-stopping signal."""
    from digitguard.attacks.pgd import PGD
    from digitguard.training.loop import to_model_input

    if len(labels) == 0:
        return 0.0
    was_training = model.training
    model.eval()
    try:
        attack = PGD(model, eps, steps=steps, seed=seed)
        correct = 0
        for start in range(0, len(labels), 500):
            x, y = to_model_input(images_u8[start : start + 500]), labels[start : start + 500]
            with torch.no_grad():
                correct += int((model(attack(x, y)).argmax(1) == y).sum())
        return correct / len(labels)
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    best_epoch: int | None  # 0-based epoch with the highest held-out PGD accuracy so far
    reason: str = ""


def early_stop(robust_history: list[float], patience: int, collapse_drop: float) -> StopDecision:
    """Stop when PGD accuracy collapsed (fell ``collapse_drop`` below its best: catastrophic
    overfitting) or has not improved for ``patience`` epochs. A pure function of the history, so a
    resumed run decides exactly as an uninterrupted one."""
    if not robust_history:
        return StopDecision(False, None)
    best = max(range(len(robust_history)), key=lambda epoch: (robust_history[epoch], -epoch))
    last = robust_history[-1]
    if robust_history[best] - last >= collapse_drop:
        return StopDecision(
            True,
            best,
            f"held-out PGD accuracy collapsed from {robust_history[best]:.4f} (epoch {best + 1}) "
            f"to {last:.4f}: catastrophic overfitting",
        )
    if len(robust_history) - 1 - best >= patience:
        return StopDecision(True, best, f"no gain in held-out PGD accuracy for {patience} epochs")
    return StopDecision(False, best)
