"""Attacks run through the Adversarial Robustness Toolbox (ART): C&W L∞, AutoAttack, and the referees.

ART is imported only when one of these attacks is built. ART works on numpy arrays, so these
classes convert at their boundary and keep the :class:`~digitguard.attacks.base.Attack`
interface: torch tensors in [0, 1] in, torch tensors out.

ART draws its random numbers from numpy's and Python's global generators and offers no
generator argument; each call seeds them from ``seed`` and restores their previous state
afterwards, so a run is reproducible given the seed and the batch size, and nothing else in
the process sees the change.

* :class:`CarliniWagnerLinf` — ART's ``CarliniLInfMethod`` (Carlini & Wagner 2017).
* :class:`AutoAttackLinf` — standard AutoAttack (APGD-CE, APGD-T, Square) from ART's attacks;
  :class:`ArtDefaultAutoAttackLinf` — ART's own ``AutoAttack`` with its default attack list.
* :class:`ArtFGSM`, :class:`ArtPGD` — ART's ``FastGradientMethod`` and
  ``ProjectedGradientDescentPyTorch``, the referees of the native FGSM and PGD.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from digitguard.attacks.base import Attack, Setting
from digitguard.errors import AttackError

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

NUM_CLASSES = 10
INPUT_SHAPE = (1, 28, 28)
BUDGET_SLACK = 1e-6  # float32 rounding at the edge of the ε-ball


def art_classifier(model: nn.Module) -> PyTorchClassifier:
    """Wrap a logits model for ART: inputs ``(1, 28, 28)`` clipped to [0, 1], cross-entropy loss, CPU."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=INPUT_SHAPE,
        nb_classes=NUM_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed numpy's and Python's global generators for ART, then put their old state back."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)  # ART reads the legacy global generator
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _to_numpy(images: torch.Tensor) -> np.ndarray:
    return images.detach().cpu().numpy().astype(np.float32)


def _to_torch(adversarial: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(adversarial, dtype=np.float32)).to(like.dtype)


class _ArtAttack(Attack):
    """Shared plumbing: one ART classifier per attack object, seeded and batched ``generate``."""

    def __init__(self, model: nn.Module, eps: float, *, batch_size: int = 128, seed: int = 0) -> None:
        super().__init__(model, eps)
        if batch_size < 1:
            raise AttackError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self._classifier: Any = None

    @property
    def classifier(self) -> Any:
        if self._classifier is None:
            self._classifier = art_classifier(self.model)
        return self._classifier

    def _generate(self, art_attack: Any, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(images) == 0:
            return images.detach().clone()
        with seeded_global_rngs(self.seed):
            adversarial = art_attack.generate(x=_to_numpy(images), y=labels.cpu().numpy().astype(np.int64))
        return _to_torch(adversarial, images)


class ArtFGSM(_ArtAttack):
    """ART's ``FastGradientMethod`` (L∞, ε, no random start): the referee of the native FGSM."""

    name = "art-fgsm"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from art.attacks.evasion import FastGradientMethod

        attack = FastGradientMethod(self.classifier, norm=np.inf, eps=self.eps, batch_size=self.batch_size)
        return self._generate(attack, images, labels)


class ArtPGD(_ArtAttack):
    """ART's ``ProjectedGradientDescentPyTorch`` started at the image itself — the referee of PGD.

    Random starts cannot be made identical between two implementations, so the referee compares
    both from the zero start (``num_random_init=0`` here, ``random_start=False`` natively): the
    same deterministic iteration, ``steps`` signed steps of ``step_size`` (default 2.5·ε/steps).
    """

    name = "art-pgd"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        steps: int = 40,
        step_size: float | None = None,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps, batch_size=batch_size, seed=seed)
        if steps < 1:
            raise AttackError(f"PGD needs at least one step, got steps={steps}")
        self.steps = steps
        self.step_size = step_size if step_size is not None else 2.5 * self.eps / steps

    def settings(self) -> dict[str, Setting]:
        return {"steps": self.steps, "step_size": self.step_size, "random_start": False}

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from art.attacks.evasion import ProjectedGradientDescentPyTorch

        attack = ProjectedGradientDescentPyTorch(
            self.classifier,
            norm=np.inf,
            eps=self.eps,
            eps_step=self.step_size,
            max_iter=self.steps,
            num_random_init=0,
            batch_size=self.batch_size,
            verbose=False,
        )
        return self._generate(attack, images, labels)


class CarliniWagnerLinf(_ArtAttack):
    """Carlini & Wagner's L∞ attack — "Towards Evaluating the Robustness of Neural Networks",
    IEEE S&P 2017 (arXiv:1608.04644) — as ART's ``CarliniLInfMethod``.

    C&W is a *minimum-norm* attack: it has no budget, it searches for the smallest L∞
    perturbation that changes the class (optimising in tanh space, lowering the bound τ while it
    keeps succeeding). To report it at a budget ε, an image counts as broken only when C&W found
    an example within ε; otherwise the original image is returned. The search does not depend on
    ε, so attacks built with the same ``cache`` share it across budgets.

    Why L∞ rather than ART's L2 variant: every other attack here, and the seed's claim, is in L∞
    with pixels in [0, 1]; an L2 example says nothing about an L∞ budget.

    A weak attack on this model, and reported as such (docs/robustness.md): ART's defaults
    (learning rate 0.01, 10 Adam steps) cannot move MNIST's saturated 0/1 pixels out of tanh
    space's flat tails and find nothing; ART's gradient also leaves out the constant ``c`` that
    weighs the classification term. With the settings below (chosen by measurement) it
    finds examples, but far out: on 50 test images of ``models/basic`` it breaks 2% within
    ε = 0.3 and 78% within 0.75, where PGD-40 breaks every image at 0.2. Its robust accuracy
    is an upper bound, never evidence of robustness.

    Arguments (defaults): ``model``, ``eps``; ART's optimiser settings ``learning_rate=0.5``,
    ``max_iter=10``, ``initial_const=0.01``, ``decrease_factor=0.9`` (chosen by measurement);
    ``seed=0``; ``cache``. ART's C&W L∞ runs one image at a time (seconds each on 2 CPU cores):
    bound the cost with the number of samples.

    Example::

        cache = {}
        for eps in (0.1, 0.3):
            adversarial = CarliniWagnerLinf(model, eps, cache=cache)(images, labels)
    """

    name = "cw"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        learning_rate: float = 0.5,
        max_iter: int = 10,
        initial_const: float = 0.01,
        decrease_factor: float = 0.9,
        batch_size: int = 128,
        seed: int = 0,
        cache: dict[bytes, np.ndarray] | None = None,
    ) -> None:
        super().__init__(model, eps, batch_size=batch_size, seed=seed)
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.initial_const = initial_const
        self.decrease_factor = decrease_factor
        self.cache = cache if cache is not None else {}

    def settings(self) -> dict[str, Setting]:
        return {
            "implementation": "art.CarliniLInfMethod",
            "learning_rate": self.learning_rate,
            "max_iter": self.max_iter,
            "initial_const": self.initial_const,
            "decrease_factor": self.decrease_factor,
            "seed": self.seed,
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        minimal = self.minimal_examples(images, labels)
        distance = (minimal - images).flatten(1).abs().amax(1)
        within = (distance <= self.eps).view(-1, 1, 1, 1)
        return torch.where(within, minimal, images.detach())

    def minimal_examples(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """ART's smallest-perturbation example per image (the image itself where it found none)."""
        from art.attacks.evasion import CarliniLInfMethod

        keys = [self._key(image, label) for image, label in zip(images, labels, strict=True)]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            attack = CarliniLInfMethod(
                self.classifier,
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                initial_const=self.initial_const,
                decrease_factor=self.decrease_factor,
                batch_size=1,
                verbose=False,
            )
            found = self._generate(attack, images[missing], labels[missing])
            for i, example in zip(missing, found, strict=True):
                self.cache[keys[i]] = example.numpy()
        return torch.stack([torch.from_numpy(self.cache[key]) for key in keys]).to(images.dtype)

    def _key(self, image: torch.Tensor, label: torch.Tensor) -> bytes:
        payload = f"{int(label)}:{sorted(self.settings().items())}:".encode()
        return hashlib.sha256(payload + image.detach().cpu().numpy().tobytes()).digest()


class AutoAttackLinf(_ArtAttack):
    """Standard AutoAttack — Croce & Hein, "Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks", ICML 2020 (arXiv:2003.01690) — L∞, built from
    ART's attacks, less FAB-T, which ART does not have.

    The stages, as in the reference implementation's ``version="standard"``, each run only on
    the images the earlier ones left standing, and an example counts only inside the ε-ball:

    1. APGD-CE: 100 iterations, 1 start (random in the ball), initial step 2ε;
    2. APGD-T: ART's difference-of-logits-ratio loss, targeted, 100 iterations, 1 start, against
       each of the 9 other classes in the order of the clean image's logits (highest first);
    3. Square: 5,000 queries, 1 restart, ``p_init=0.8``.

    FAB-T, the reference's third stage, is a minimum-norm attack that Croce & Hein report adds
    almost nothing after APGD-T; its absence can only raise robust accuracy, so the report says so.
    ``stage_breaks`` counts the images each stage broke, over every call of this object.
    """

    name = "autoattack"
    TARGETS = NUM_CLASSES - 1
    ITERATIONS = 100
    SQUARE_QUERIES = 5000

    def __init__(self, model: nn.Module, eps: float, *, batch_size: int = 128, seed: int = 0) -> None:
        super().__init__(model, eps, batch_size=batch_size, seed=seed)
        self.stage_breaks: dict[str, int] = {"APGD-CE": 0, "APGD-T": 0, "Square": 0}

    def settings(self) -> dict[str, Setting]:
        return {
            "implementation": "standard AutoAttack from ART's attacks (FAB-T omitted)",
            "attacks": "APGD-CE, APGD-T (9 targets), Square",
            "iterations": self.ITERATIONS,
            "square_queries": self.SQUARE_QUERIES,
            "eps_step": 2 * self.eps,
            "seed": self.seed,
            **{f"broken_by_{stage}": count for stage, count in self.stage_breaks.items()},
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(images) == 0:
            return images.detach().clone()
        x, truth = _to_numpy(images), labels.cpu().numpy().astype(np.int64)
        with seeded_global_rngs(self.seed):
            logits = self.classifier.predict(x, batch_size=self.batch_size)
            standing = logits.argmax(1) == truth
            adversarial = x.copy()
            for stage, attack, goals in self._stages(logits, truth):
                if not standing.any():
                    break
                rows = np.flatnonzero(standing)
                candidates = attack.generate(x=x[rows], y=_one_hot(goals[rows]))
                fooled = self._fooled(x[rows], candidates, truth[rows])
                adversarial[rows[fooled]] = candidates[fooled]
                standing[rows[fooled]] = False
                self.stage_breaks[stage] += int(fooled.sum())
        return _to_torch(adversarial, images)

    def _stages(self, logits: np.ndarray, truth: np.ndarray) -> Iterator[tuple[str, Any, np.ndarray]]:
        """(stage, ART attack, the label each image is attacked with: its own, or a target)."""
        from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

        def apgd(loss: str, targeted: bool) -> Any:
            return AutoProjectedGradientDescent(
                self.classifier, norm=np.inf, eps=self.eps, eps_step=2 * self.eps,
                max_iter=self.ITERATIONS, targeted=targeted, nb_random_init=1,
                batch_size=self.batch_size, loss_type=loss, verbose=False,
            )  # fmt: skip

        yield "APGD-CE", apgd("cross_entropy", targeted=False), truth
        others = logits.copy()
        others[np.arange(len(truth)), truth] = -np.inf
        ranked = np.argsort(-others, axis=1, kind="stable")  # the other classes, most likely first
        targeted = apgd("difference_logits_ratio", targeted=True)
        for rank in range(self.TARGETS):
            yield "APGD-T", targeted, ranked[:, rank]
        square = SquareAttack(
            self.classifier, norm=np.inf, eps=self.eps, max_iter=self.SQUARE_QUERIES, p_init=0.8,
            nb_restarts=1, batch_size=self.batch_size, verbose=False,
        )  # fmt: skip
        yield "Square", square, truth

    def _fooled(self, originals: np.ndarray, candidates: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Which candidates lie in the ε-ball ∩ [0, 1] and are misclassified (any wrong class)."""
        flat = np.abs(candidates - originals).reshape(len(candidates), -1)
        inside = (flat.max(axis=1) <= self.eps + BUDGET_SLACK) & (candidates.min(axis=(1, 2, 3)) >= 0.0)
        inside &= candidates.max(axis=(1, 2, 3)) <= 1.0
        wrong = self.classifier.predict(candidates, batch_size=self.batch_size).argmax(1) != truth
        return inside & wrong


class ArtDefaultAutoAttackLinf(_ArtAttack):
    """ART's ``AutoAttack`` with ART's default attack list, untargeted, L∞ — kept so that the
    earlier results measured with it can be re-run (``--attack autoattack-art``).

    ART's list is APGD-CE and APGD-DLR (100 iterations, 5 random starts each), DeepFool and
    Square (5,000 queries, 5 restarts); each runs only on the images the previous ones did not
    break, and an example counts only if it lies within ε. It is not the "standard" AutoAttack
    (:class:`AutoAttackLinf`). APGD's initial step is 2ε, as in the paper (ART's default is a
    fixed 0.1). Square's 25,000 queries per unbroken image make it slow on CPU.
    """

    name = "autoattack-art"

    def settings(self) -> dict[str, Setting]:
        return {
            "implementation": "art.AutoAttack (default attack list)",
            "attacks": "APGD-CE, APGD-DLR, DeepFool, Square",
            "eps_step": 2 * self.eps,
            "seed": self.seed,
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from art.attacks.evasion import AutoAttack

        attack = AutoAttack(
            self.classifier, norm=np.inf, eps=self.eps, eps_step=2 * self.eps, batch_size=self.batch_size
        )
        for member in attack.attacks:
            member.set_params(verbose=False)
        return self._generate(attack, images, labels)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]
