"""The explicit registry of attacks the command line offers, and their referees."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from digitguard.attacks.art_attacks import (
    ArtDefaultAutoAttackLinf,
    ArtFGSM,
    ArtPGD,
    AutoAttackLinf,
    CarliniWagnerLinf,
)
from digitguard.attacks.base import Attack
from digitguard.attacks.binarised_search import BinarisedSearchAttack
from digitguard.attacks.fgsm import FGSM
from digitguard.attacks.pgd import PGD
from digitguard.attacks.reference_autoattack import ReferenceAutoAttack
from digitguard.errors import AttackError, UnknownAttackError

AttackForEpsilon = Callable[[float], Attack]

PGD_DEFAULT_STEPS = 40
BINARISED_SEARCH_DEFAULT_STEPS = 100


@dataclass(frozen=True)
class AttackOptions:
    """What a user may set besides ε. ``None`` means "the attack's default"."""

    steps: int | None = None
    restarts: int | None = None
    random_start: bool = True
    seed: int = 0
    batch_size: int = 128


def _fgsm(model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    _refuse_iterations("fgsm", options)
    return lambda eps: FGSM(model, eps)


def _pgd(model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    steps = options.steps if options.steps is not None else PGD_DEFAULT_STEPS
    restarts = options.restarts if options.restarts is not None else 1
    return lambda eps: PGD(
        model, eps, steps=steps, restarts=restarts, random_start=options.random_start, seed=options.seed
    )


def _cw(model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    _refuse_iterations("cw", options)
    cache: dict[bytes, np.ndarray] = {}  # C&W's search does not depend on ε: one search serves every budget
    return lambda eps: CarliniWagnerLinf(
        model, eps, seed=options.seed, batch_size=options.batch_size, cache=cache
    )


def _autoattack(model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    _refuse_iterations("autoattack", options)
    return lambda eps: AutoAttackLinf(model, eps, seed=options.seed, batch_size=options.batch_size)


def _autoattack_art(model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    _refuse_iterations("autoattack-art", options)
    return lambda eps: ArtDefaultAutoAttackLinf(model, eps, seed=options.seed, batch_size=options.batch_size)


def _autoattack_reference(model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    _refuse_iterations("autoattack-reference", options)
    return lambda eps: ReferenceAutoAttack(model, eps, seed=options.seed, batch_size=options.batch_size)


def _binarised_search(model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    # The registry knows no detector threshold: here the attack fools the classifier on all three
    # squeezed views; `digitguard detector evaluate` runs it against the calibrated detector.
    if options.restarts is not None:
        raise AttackError("--restarts applies to pgd, not to binarised-search (it runs once per wrong class)")
    steps = options.steps if options.steps is not None else BINARISED_SEARCH_DEFAULT_STEPS
    return lambda eps: BinarisedSearchAttack(
        model, eps, threshold=None, steps=steps, random_start=options.random_start, seed=options.seed
    )


def _refuse_iterations(name: str, options: AttackOptions) -> None:
    if options.steps is not None or options.restarts is not None or not options.random_start:
        raise AttackError(f"--steps, --restarts and --no-random-start apply to pgd, not to {name}")


ATTACKS: dict[str, Callable[[nn.Module, AttackOptions], AttackForEpsilon]] = {
    "fgsm": _fgsm,
    "pgd": _pgd,
    "cw": _cw,
    "autoattack": _autoattack,
    "autoattack-art": _autoattack_art,
    "autoattack-reference": _autoattack_reference,
    "binarised-search": _binarised_search,
}

# Images attacked when the caller does not say: the whole test set where that is cheap.
DEFAULT_SAMPLES: dict[str, int | None] = {
    "fgsm": None,
    "pgd": None,
    "cw": 100,
    "autoattack": 100,
    "autoattack-art": 100,
    "autoattack-reference": 100,
    "binarised-search": 100,
}


def attack_for(name: str, model: nn.Module, options: AttackOptions) -> AttackForEpsilon:
    """ε ↦ the registered attack ``name`` at that budget; :class:`UnknownAttackError` for other names."""
    try:
        factory = ATTACKS[name]
    except KeyError:
        raise UnknownAttackError(f"unknown attack {name!r}; available: {', '.join(ATTACKS)}") from None
    make = factory(model, options)
    make(1.0)  # builds nothing expensive, but refuses bad settings before any data is loaded
    return make


def referees_for(
    name: str, model: nn.Module, options: AttackOptions
) -> tuple[AttackForEpsilon, AttackForEpsilon]:
    """(native, ART) versions of attack ``name`` that must agree: FGSM as is, PGD from the zero start."""
    if name == "fgsm":
        return (lambda eps: FGSM(model, eps)), (
            lambda eps: ArtFGSM(model, eps, batch_size=options.batch_size)
        )
    if name == "pgd":
        steps = options.steps if options.steps is not None else PGD_DEFAULT_STEPS
        return (lambda eps: PGD(model, eps, steps=steps, random_start=False)), (
            lambda eps: ArtPGD(model, eps, steps=steps, batch_size=options.batch_size)
        )
    raise AttackError(f"the ART referee checks the native fgsm and pgd, not {name!r}")
