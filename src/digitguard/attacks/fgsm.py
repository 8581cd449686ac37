"""FGSM, the fast gradient sign method."""

from __future__ import annotations

import torch

from digitguard.attacks.base import Attack, loss_gradient


class FGSM(Attack):
    """Fast Gradient Sign Method — Goodfellow, Shlens & Szegedy, "Explaining and Harnessing
    Adversarial Examples", ICLR 2015 (arXiv:1412.6572).

    One step of size ε along the sign of the cross-entropy gradient, clipped to the pixel range::

        x' = clip(x + ε · sign(∇ₓ CE(f(x), y)), 0, 1)

    Norm L∞. Arguments: ``model`` (logits, eval mode), ``eps`` in (0, 1]. Inputs ``(b, 1, 28, 28)``
    in [0, 1]. A pixel whose gradient is exactly zero is left as it is (sign 0). Deterministic,
    and each image's result is independent of the batch it is in.

    Example::

        adversarial = FGSM(model, eps=0.1)(images, labels)
    """

    name = "fgsm"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gradient = loss_gradient(self.model, images, labels)
        return (images + self.eps * gradient.sign()).clamp(0.0, 1.0).detach()
