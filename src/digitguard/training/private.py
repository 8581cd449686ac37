"""Differentially private training: DP-SGD (Abadi et al., CCS 2016) with Opacus — pure torch, no files.

Every step draws a Poisson sample of the training set (each image independently with
probability ``q = batch_size / n``), computes one gradient per image (Opacus'
``GradSampleModule``), clips each to L2 norm ``max_grad_norm``, sums them, adds Gaussian noise of
standard deviation ``noise_multiplier · max_grad_norm`` and divides by the expected batch size
(Opacus' ``DPOptimizer``). The noise multiplier is the smallest that keeps the whole run —
``epochs · round(n / batch_size)`` steps — within the (ε, δ) budget under the Rényi-DP
accountant; the ε actually spent is recomputed from the steps taken and recorded.

Two sources of randomness carry the guarantee and are therefore *not* derived from the run's
recorded seed: the Poisson sample (privacy amplification by sampling assumes nobody knows which
images were in a batch) and the noise (anyone who can replay it can subtract it). Both come from
a seed drawn from the operating system and kept nowhere. The recorded seed still decides the
initial weights and the validation split; a DP run is therefore not bit-reproducible, by design.
Not covered (documented in ``docs/privacy.md``): Opacus' ``secure_mode`` (a cryptographic noise
generator, against floating-point attacks on the Gaussian sampler) and privacy cost of choosing
hyper-parameters.

Architectures with a fixed front end (``frozen_features``, e.g. ``scatter-cnn``) have it
computed once for all training images; only their ``classifier`` is trained. When the front end
standardises its features (``set_feature_statistics``), the per-channel means and second moments
are measured on the training set first — each image's contribution clipped, Gaussian noise of
multiplier :data:`STATISTICS_NOISE` added (Tramèr & Boneh, ICLR 2021) — and the two releases are
composed with DP-SGD in the same Rényi accountant, so ε covers them.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn
from torch.nn import functional as F

from digitguard.training.loop import EpochResult, to_model_input

ACCOUNTANT = "rdp"
ORDERS = [*RDPAccountant.DEFAULT_ALPHAS, 80, 100, 128, 192, 256]
MOMENTUM = 0.9
FEATURE_BATCH = 2000
STATISTICS_NOISE = 8.0  # noise multiplier of the two feature statistics (Tramèr & Boneh)


class PrivacyConfigError(ValueError):
    """A differential-privacy setting breaks a rule (ε not positive, δ outside (0, 1), …)."""


@dataclass(frozen=True)
class PrivacyBudget:
    epsilon: float
    delta: float
    max_grad_norm: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise PrivacyConfigError(f"DP ε must be a positive number, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise PrivacyConfigError(f"DP δ must be in (0, 1), got {self.delta}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise PrivacyConfigError(f"the clipping norm must be positive, got {self.max_grad_norm}")


@dataclass(frozen=True)
class PrivacySchedule:
    """How a budget is spent: the sampling rate, the steps and the noise that fit ε."""

    sample_rate: float
    steps_per_epoch: int
    epochs: int
    noise_multiplier: float
    statistics_noise: float | None = None  # the feature statistics released before training, if any

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def plan(
    budget: PrivacyBudget,
    training_size: int,
    batch_size: int,
    epochs: int,
    statistics_noise: float | None = None,
) -> PrivacySchedule:
    """The smallest noise multiplier that keeps ``epochs`` epochs of Poisson batches (and the
    feature statistics, when ``statistics_noise`` is given) within ``budget``."""
    if batch_size >= training_size:
        raise PrivacyConfigError(
            f"DP batch size {batch_size} must be smaller than the {training_size} training images"
        )
    rate, steps_per_epoch = batch_size / training_size, max(1, round(training_size / batch_size))

    def schedule(noise: float) -> PrivacySchedule:
        return PrivacySchedule(rate, steps_per_epoch, epochs, noise, statistics_noise)

    low, high = 0.1, 200.0
    if epsilon_spent(schedule(high), steps_per_epoch * epochs, budget.delta) > budget.epsilon:
        raise PrivacyConfigError(f"ε = {budget.epsilon} cannot be met with this schedule at any noise")
    while high - low > 1e-3:  # bisection: ε falls as the noise grows
        middle = (low + high) / 2
        spent = epsilon_spent(schedule(middle), steps_per_epoch * epochs, budget.delta)
        low, high = (low, middle) if spent <= budget.epsilon else (middle, high)
    return schedule(high)


def epsilon_spent(schedule: PrivacySchedule, steps: int, delta: float) -> float:
    """ε after the statistics (if any) and ``steps`` noisy steps, composed in Rényi DP."""
    rdp = np.zeros(len(ORDERS))
    if steps:
        rdp += compute_rdp(
            q=schedule.sample_rate, noise_multiplier=schedule.noise_multiplier, steps=steps, orders=ORDERS
        )
    if schedule.statistics_noise is not None:
        rdp += 2 * compute_rdp(q=1.0, noise_multiplier=schedule.statistics_noise, steps=1, orders=ORDERS)
    if not rdp.any():
        return 0.0
    with warnings.catch_warnings():
        # Opacus warns when the best Rényi order is its largest one; the bound stays valid.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        epsilon, _ = get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)
    return float(epsilon)


def needs_statistics(model: nn.Module) -> bool:
    return hasattr(model, "set_feature_statistics")


def statistics_noise_for(model: nn.Module) -> float | None:
    """The statistics' noise multiplier a plan for ``model`` must count, or None."""
    return STATISTICS_NOISE if needs_statistics(model) else None


def private_statistics(
    maps: torch.Tensor, clips: tuple[float, float], noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of ``maps`` ``(n, c, h, w)`` as two Gaussian releases.

    Each image's vector of spatial means (and of spatial means of squares) is clipped to L2 norm
    ``clips[0]`` (``clips[1]``), so adding or removing one image moves the sum by at most the clip;
    the sum gets Gaussian noise of standard deviation ``noise · clip`` and is divided by ``n``.
    """
    first = _clip_rows(maps.mean((2, 3)), clips[0]).sum(0)
    second = _clip_rows((maps**2).mean((2, 3)), clips[1]).sum(0)
    first = (first + torch.randn(first.shape, generator=generator) * noise * clips[0]) / len(maps)
    second = (second + torch.randn(second.shape, generator=generator) * noise * clips[1]) / len(maps)
    return first, (second - first**2).clamp(min=0.0)


def _clip_rows(rows: torch.Tensor, limit: float) -> torch.Tensor:
    return rows * (limit / rows.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)


def trainable_part(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, nn.Module]:
    """``(fixed front end or None, the module DP-SGD trains)``."""
    front = getattr(model, "frozen_features", None)
    if front is None:
        return None, model
    return front, cast(nn.Module, model.classifier)


def check_supported(module: nn.Module) -> None:
    """Refuse layers whose per-sample gradients DP-SGD cannot clip (BatchNorm mixes samples)."""
    problems = ModuleValidator.validate(module, strict=False)
    if problems:
        raise PrivacyConfigError(f"architecture not trainable with DP-SGD: {problems}")


class PrivateTraining:
    """DP-SGD over in-memory data: one object per run (or per resumed run)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        labels: torch.Tensor,
        budget: PrivacyBudget,
        schedule: PrivacySchedule,
        statistics_released: bool = False,
    ) -> None:
        """``statistics_released``: the model already holds its noisy feature statistics (a
        resumed run restored them from its checkpoint); they are used, not released again —
        a second release would spend budget the accountant does not count."""
        front, self.trained = trainable_part(model)
        self.statistics_released = statistics_released
        check_supported(self.trained)
        if needs_statistics(model) != (schedule.statistics_noise is not None):
            raise PrivacyConfigError(
                "the schedule must account for the model's feature statistics, and only then"
            )
        self.budget, self.schedule, self.labels = budget, schedule, labels
        self.sampling = torch.Generator().manual_seed(secrets.randbits(63))
        self.inputs = self._inputs(model, front, images)
        self.uses_features = front is not None
        self.per_sample = GradSampleModule(self.trained)
        self.optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=schedule.noise_multiplier,
            max_grad_norm=budget.max_grad_norm,
            expected_batch_size=max(1, round(schedule.sample_rate * len(labels))),
            generator=torch.Generator().manual_seed(secrets.randbits(63)),
        )

    def _inputs(self, model: Any, front, images: torch.Tensor) -> torch.Tensor:
        """What the trained part sees: the images, or their fixed features computed once — after
        the feature statistics have been released with noise, when the model standardises them."""
        if not needs_statistics(model):
            return _features(front, images) if front is not None else images
        maps = _features(model.scattering_maps, images)
        if not self.statistics_released:
            noise = float(self.schedule.statistics_noise or 0.0)
            model.set_feature_statistics(
                *private_statistics(maps, model.STATISTICS_CLIP, noise, self.sampling)
            )
        return model.standardise(maps)

    def train_epoch(self, epoch: int) -> EpochResult:
        self.trained.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for _ in range(self.schedule.steps_per_epoch):
            index = poisson_sample(len(self.labels), self.schedule.sample_rate, self.sampling)
            self.optimizer.zero_grad(set_to_none=True)
            if len(index) == 0:
                self._noise_only_step()
                continue
            x = self.inputs[index] if self.uses_features else to_model_input(self.inputs[index])
            y = self.labels[index]
            logits = self.per_sample(x)
            loss = F.cross_entropy(logits, y)
            with warnings.catch_warnings():
                # Opacus' hooks fire on module outputs when the inputs need no gradient: expected here.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            self.optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        return EpochResult(epoch, loss_sum / max(1, seen), correct / max(1, seen))

    def _noise_only_step(self) -> None:
        # An empty Poisson batch still spends a step: the update is noise alone.
        for parameter in self.trained.parameters():
            parameter.grad_sample = torch.zeros((1, *parameter.shape))  # type: ignore[attr-defined]
        self.optimizer.step()

    def record(self, steps: int) -> dict[str, object]:
        """What the manifest says about the guarantee (``steps``: noisy steps taken)."""
        return {
            "mechanism": "DP-SGD (Opacus, Poisson sampling, per-sample clipping)",
            "accountant": ACCOUNTANT,
            "target_epsilon": self.budget.epsilon,
            "epsilon": round(epsilon_spent(self.schedule, steps, self.budget.delta), 4),
            "delta": self.budget.delta,
            "noise_multiplier": self.schedule.noise_multiplier,
            "statistics_noise_multiplier": self.schedule.statistics_noise,
            "max_grad_norm": self.budget.max_grad_norm,
            "sample_rate": self.schedule.sample_rate,
            "steps": steps,
            "training_size": len(self.labels),
            "trained_module": "classifier" if self.uses_features else "whole model",
        }

    def close(self) -> None:
        """Remove Opacus' hooks and per-sample gradients from the model."""
        self.per_sample._close()
        for parameter in self.trained.parameters():
            if hasattr(parameter, "grad_sample"):
                del parameter.grad_sample


def poisson_sample(size: int, sample_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Indices of a Poisson sample: each of ``size`` items independently with ``sample_rate``."""
    return (torch.rand(size, generator=generator) < sample_rate).nonzero().squeeze(1)


@torch.no_grad()
def _features(front: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    chunks = [
        front(to_model_input(images[start : start + FEATURE_BATCH]))
        for start in range(0, len(images), FEATURE_BATCH)
    ]
    return torch.cat(chunks)


def sgd_for(model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """DP-SGD's base optimizer: SGD with momentum over the trainable part, constant rate."""
    _, trained = trainable_part(model)
    return torch.optim.SGD(trained.parameters(), lr=learning_rate, momentum=MOMENTUM)
