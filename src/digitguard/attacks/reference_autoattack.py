"""AutoAttack as its authors wrote it: Croce & Hein's reference implementation (``pyautoattack``).

The project's own :class:`~digitguard.attacks.art_attacks.AutoAttackLinf` is assembled from ART's
attacks and lacks FAB-T; this one runs the authors' code unchanged, so that the two can referee
each other: a model that looks robust under one and not under the other has a finding to explain.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata

import torch
from torch import nn

from digitguard.attacks.base import Attack, Setting, check_budget
from digitguard.errors import AttackError

# The reference's names for the stages of its "standard" version, in the order it runs them.
STANDARD_STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")
_REFERENCE_LOGGER = "auto-attack"  # the logger pyautoattack's AutoAttack and APGD report through


class ReferenceAutoAttack(Attack):
    """Standard AutoAttack — Croce & Hein, "Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks", ICML 2020 (arXiv:2003.01690) — run by the
    authors' own code (PyPI ``pyautoattack`` 0.2.0, ``AutoAttack(version="standard")``).

    Norm L∞, inputs ``(b, 1, 28, 28)`` float32 in [0, 1]. The stages, each on the images the
    earlier ones left standing: APGD-CE (100 iterations, 1 start), APGD-T (DLR loss, 9 targets),
    FAB-T (9 targets) and Square (5,000 queries). Returns each image's adversarial example where
    the reference found one, the image itself elsewhere; the result is checked against the ε-ball
    and [0, 1] (:func:`~digitguard.attacks.base.check_budget`) before it is returned.

    Arguments (defaults): ``model`` (logits, eval mode), ``eps`` in (0, 1]; ``seed=0``;
    ``batch_size=128`` (the reference's own batches); ``stages=STANDARD_STAGES`` — a subset, in the
    standard order and with the standard settings, for tests and ablations only.

    Reproducible given the seed and the batch: the reference seeds torch's global generator at
    every stage (this class restores its state afterwards), and an image's random start depends
    on its batch-mates, unlike :class:`~digitguard.attacks.pgd.PGD`'s. The reference's own sanity
    checks (randomised or dynamic defence, zero gradients, Square beating the gradient attacks;
    its ``flags_doc.md``) are collected in :attr:`flags` and reported in :meth:`settings` instead
    of being logged.

    Example::

        adversarial = ReferenceAutoAttack(model, eps=0.3)(images, labels)
    """

    name = "autoattack-reference"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        seed: int = 0,
        batch_size: int = 128,
        stages: Sequence[str] = STANDARD_STAGES,
    ) -> None:
        super().__init__(model, eps)
        if batch_size < 1:
            raise AttackError(f"batch size must be at least 1, got {batch_size}")
        unknown = [stage for stage in stages if stage not in STANDARD_STAGES]
        if unknown or not stages:
            known = ", ".join(STANDARD_STAGES)
            raise AttackError(f"AutoAttack stages must be a non-empty subset of {known}; got {stages!r}")
        self.seed = seed
        self.batch_size = batch_size
        self.stages = tuple(stage for stage in STANDARD_STAGES if stage in stages)
        self.flags: list[str] = []

    def settings(self) -> dict[str, Setting]:
        return {
            "implementation": f"pyautoattack {_reference_version()} (Croce & Hein's reference), standard",
            "attacks": ", ".join(self.stages),
            "square_queries": 5000,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "flags": "; ".join(dict.fromkeys(self.flags)),
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(images) == 0:
            return images.detach().clone()
        from pyautoattack import AutoAttack

        inputs = images.detach().to(torch.float32)
        with torch.random.fork_rng(devices=[]), _kept_trace(), _captured_warnings() as flags:
            reference = AutoAttack(
                self.model, norm="Linf", eps=self.eps, version="standard", seed=self.seed,
                device=inputs.device,
            )  # fmt: skip
            reference.verbose = False
            reference.attacks_to_run = list(self.stages)
            adversarial, _ = reference.run_standard_evaluation(
                inputs, labels.detach().to(torch.long), batch_size=self.batch_size
            )
        self.flags.extend(flags)
        adversarial = adversarial.detach().to(images.dtype)
        check_budget(adversarial, images, self.eps, self.name)
        return adversarial


def _reference_version() -> str:
    try:
        return metadata.version("pyautoattack")
    except metadata.PackageNotFoundError:
        return "(not installed)"


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    """The reference logger's warnings, kept in a list instead of reaching the root logger."""
    logger = logging.getLogger(_REFERENCE_LOGGER)
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler, propagate = Keep(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextlib.contextmanager
def _kept_trace() -> Iterator[None]:
    """Put back the trace function (a debugger's, coverage's) that the reference's dynamic-defence
    check replaces with its own and then clears."""
    trace = sys.gettrace()
    try:
        yield
    finally:
        sys.settrace(trace)
