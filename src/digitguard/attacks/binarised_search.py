"""Binarised-image search: the adaptive attack that breaks the feature-squeezing detector.

The detector (:mod:`digitguard.defences.squeeze`; Xu, Evans & Qi, NDSS 2018) compares the model
on an input with the model on its 1-bit binarisation and its 2×2 median filter. Straight-through
PGD (:class:`~digitguard.attacks.adaptive.SqueezeAwarePGD`, BPDA: Athalye, Carlini & Wagner,
ICML 2018) must push a binarised image through a gradient that is zero almost everywhere; this
attack searches the binarised image directly instead, as an adaptive attack should exploit the
defence's structure (He, Wei, Chen, Carlini & Song, "Adversarial Example Defenses: Ensembles of
Weak Defenses are not Strong", WOOT 2017; Tramèr, Carlini, Brendel & Madry, NeurIPS 2020).

Within an L∞ budget ε < 0.5 only a pixel whose clean value is in (0.5 − ε, 0.5 + ε] can change
its binarised value (the binarisation threshold is 0.5). For each target class t:

1. **Binarised-image search.** Relax the reachable pixels of the binary image to reals in [0, 1]
   (from 0.5; the others keep the clean image's binary value), ascend log p_t over them with
   signed gradient steps and round at 0.5. Then flip pixels greedily: per step, of the flips
   that the gradient of log p_t at the binary image ranks highest (a saliency map, as in JSMA:
   Papernot et al., EuroS&P 2016), make the one that raises p_t most, until p_t reaches
   ``confidence`` or no such flip helps.
2. **Binarisation-preserving PGD.** With q = f(binary image of step 1) if that fools the model,
   else the one-hot t (and always the one-hot t without a detector threshold), PGD on
   −H(q, f(x)) − H(q, f(median(x))) − κ·max(0, score − margin·τ) (H: cross-entropy) inside the
   box of pixel values within ε of the image, in [0, 1] and on the side of 0.5 that the binary
   image chose (:class:`BinarisationBox`). The binarised view stays exactly that image while the
   input and median views are pulled to its distribution: all three agree on a wrong class, and
   the detector's score stays low.

Targets are the wrong classes in the order of the model's logits on the clean binarised image
(all nine, or the first ``targets``). Per image the attack keeps the best candidate seen — an
evading one (misclassified, score ≤ τ) with the lowest score, else the one with the lowest
correct-class margin — and moves to the next target only for images that have not evaded yet.
With ``threshold=None`` it attacks the classifier views alone: the score term is dropped and
"evading" means misclassified.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.attacks.base import Attack, Setting, check_budget, seeded_uniform
from digitguard.defences.squeeze import BINARY_THRESHOLD, binarize, median_filter, scores_from_logits
from digitguard.errors import AttackError

CLASSES = 10
SEARCH_RATE = 0.1  # the relaxation's first step; it decays linearly to 0
# The smallest float32 above the binarisation threshold: the nearest to 0.5 a pixel binarising to 1 can be.
_JUST_ABOVE = float(torch.nextafter(torch.tensor(BINARY_THRESHOLD), torch.tensor(1.0)))


def flippable(images: torch.Tensor, eps: float) -> torch.Tensor:
    """Pixels whose binarisation an L∞ perturbation of ``eps`` (inside [0, 1]) can set to 0 and to 1."""
    lower, upper = (images - eps).clamp(0.0, 1.0), (images + eps).clamp(0.0, 1.0)
    return (lower <= BINARY_THRESHOLD) & (upper > BINARY_THRESHOLD)


@dataclass(frozen=True)
class BinarisationBox:
    """Per pixel, the values within ε of ``images``, in [0, 1], that binarise to ``binary``."""

    lower: torch.Tensor
    upper: torch.Tensor

    @classmethod
    def around(cls, images: torch.Tensor, binary: torch.Tensor, eps: float) -> BinarisationBox:
        """The box; :class:`AttackError` if some pixel of ``binary`` is out of reach of its image."""
        lower, upper = (images - eps).clamp(0.0, 1.0), (images + eps).clamp(0.0, 1.0)
        ones = binary > BINARY_THRESHOLD
        lower = torch.where(ones, lower.clamp(min=_JUST_ABOVE), lower)
        upper = torch.where(ones, upper, upper.clamp(max=BINARY_THRESHOLD))
        if bool((lower > upper).any()):
            raise AttackError(f"the binary image has pixels that no perturbation within ε = {eps} reaches")
        return cls(lower, upper)

    def project(self, adversarial: torch.Tensor) -> torch.Tensor:
        """The nearest point of the box: its binarisation is the box's binary image."""
        return torch.minimum(torch.maximum(adversarial, self.lower), self.upper)


class BinarisedSearchAttack(Attack):
    """Binarised-image search, then binarisation-preserving PGD, per wrong class (module docstring).

    Norm L∞, inputs ``(b, 1, 28, 28)`` in [0, 1]. Arguments (defaults): ``model``, ``eps``;
    ``threshold`` (the detector's τ; ``None`` attacks the classifier views only); ``steps=100``
    PGD steps per target; ``step_size=None`` (2.5·ε/steps); ``targets=None`` (every wrong class;
    k: the first k); ``search_steps=50`` (relaxation steps); ``refine_steps=20`` (greedy flips);
    ``shortlist=8`` (flips tried exactly per greedy step); ``confidence=0.99`` (the p_t at which
    the search stops); ``penalty=10`` (κ); ``margin=0.8``; ``random_start=False`` (PGD from the
    image, clipped into the box; measured stronger than a uniform start on the served model);
    ``seed=0`` (of the random starts). Deterministic and batch-independent: a random start is
    seeded per image (seed, target rank, image bytes) and no step couples images.

    Example::

        adversarial = BinarisedSearchAttack(model, 0.3, threshold=calibration.threshold)(images, labels)
    """

    name = "binarised-search"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        threshold: float | None,
        steps: int = 100,
        step_size: float | None = None,
        targets: int | None = None,
        search_steps: int = 50,
        refine_steps: int = 20,
        shortlist: int = 8,
        confidence: float = 0.99,
        penalty: float = 10.0,
        margin: float = 0.8,
        random_start: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps)
        if steps < 1 or search_steps < 0 or refine_steps < 0 or shortlist < 1:
            raise AttackError(
                f"{self.name} needs steps ≥ 1, search_steps ≥ 0, refine_steps ≥ 0 and shortlist ≥ 1, "
                f"got {steps}, {search_steps}, {refine_steps}, {shortlist}"
            )
        if targets is not None and not 1 <= targets <= CLASSES - 1:
            raise AttackError(f"{self.name} targets must be in [1, {CLASSES - 1}] or None, got {targets}")
        if threshold is not None and not 0 <= threshold <= 2:
            raise AttackError(f"the detector threshold must be in [0, 2], got {threshold}")
        if not 0 < confidence < 1:
            raise AttackError(f"{self.name} confidence must be in (0, 1), got {confidence}")
        self.threshold, self.steps, self.targets = threshold, steps, targets
        self.step_size = step_size if step_size is not None else 2.5 * self.eps / steps
        self.search_steps, self.refine_steps, self.shortlist = search_steps, refine_steps, shortlist
        self.confidence = confidence
        self.penalty, self.margin, self.random_start, self.seed = penalty, margin, random_start, seed

    def settings(self) -> dict[str, Setting]:
        return {
            "threshold": self.threshold,
            "steps": self.steps,
            "step_size": self.step_size,
            "targets": self.targets if self.targets is not None else "all",
            "search_steps": self.search_steps,
            "refine_steps": self.refine_steps,
            "shortlist": self.shortlist,
            "confidence": self.confidence,
            "penalty": self.penalty,
            "margin": self.margin,
            "random_start": self.random_start,
            "seed": self.seed,
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        best = _Best(images, labels, self.threshold)
        with torch.no_grad():
            best.offer(torch.arange(len(images)), images, *self._outcome(images, binarize(images)))
            order = self._target_order(images, labels)
        for rank in range(order.shape[1]):
            todo = (~best.evaded).nonzero().flatten()
            if not len(todo):
                break
            target = order[todo, rank]
            binary = self._search_binarised(images[todo], target)
            self._preserving_pgd(images[todo], labels[todo], target, binary, rank, best, todo)
        check_budget(best.images, images, self.eps, self.name)
        return best.images

    def _target_order(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(b, targets)``: the wrong classes by descending logit on the binarised image."""
        logits = self.model(binarize(images)).clone()
        logits[torch.arange(len(labels)), labels] = -torch.inf
        return logits.argsort(dim=1, descending=True, stable=True)[:, : self.targets or CLASSES - 1]

    def _search_binarised(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Step 1: the binary image, reachable within ε, that the model gives to ``target`` most confidently.

        A relaxation first — signed-gradient ascent on log p_t over the reachable pixels as reals in
        [0, 1], from 0.5, then rounded — and a greedy refinement of the rounded image after it."""
        reachable = flippable(images, self.eps)
        clean = binarize(images)
        relaxed = torch.where(reachable, torch.full_like(images, BINARY_THRESHOLD), clean)
        for step in range(self.search_steps):
            gradient = _log_probability_gradient(self.model, relaxed, target)
            rate = SEARCH_RATE * (1 - step / self.search_steps)
            relaxed = torch.where(reachable, (relaxed + rate * gradient.sign()).clamp(0.0, 1.0), clean)
        return self._refine(torch.where(reachable, binarize(relaxed), clean), reachable, target)

    def _refine(self, binary: torch.Tensor, reachable: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Greedy flips: per step, of the ``shortlist`` flips the gradient of log p_t ranks highest (a
        saliency map), make the one that raises p_t most — until p_t reaches ``confidence`` or no
        shortlisted flip helps."""
        binary, reachable = binary.clone(), reachable.flatten(1)
        probability = self._target_probability(binary, target)
        live = torch.arange(len(binary))
        for _ in range(self.refine_steps):
            live = live[probability[live] < self.confidence]
            if not len(live):
                break
            flat = binary[live].flatten(1)  # (n, 784)
            gain = _log_probability_gradient(self.model, binary[live], target[live]).flatten(1)
            gain = (gain * (1 - 2 * flat)).masked_fill(~reachable[live], -torch.inf)  # 0 → 1: +1, 1 → 0: −1
            values, pixels = gain.topk(min(self.shortlist, gain.shape[1]), dim=1)  # (n, k)
            candidates = flat.unsqueeze(1).repeat(1, pixels.shape[1], 1)  # (n, k, 784)
            flipped = candidates.gather(2, pixels.unsqueeze(2))
            candidates.scatter_(2, pixels.unsqueeze(2), 1 - flipped)
            scores = self._target_probability(
                candidates.view(-1, *binary.shape[1:]), target[live].repeat_interleave(pixels.shape[1])
            ).view_as(values)
            best_score, choice = scores.masked_fill(values == -torch.inf, -1.0).max(1)
            better = best_score > probability[live]
            chosen = live[better]
            binary[chosen] = candidates[better, choice[better]].view(-1, *binary.shape[1:])
            probability[chosen] = best_score[better]
            live = chosen  # an image whose shortlist holds no better flip would get the same one again
        return binary

    def _preserving_pgd(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        target: torch.Tensor,
        binary: torch.Tensor,
        rank: int,
        best: _Best,
        rows: torch.Tensor,
    ) -> None:
        """Step 2: PGD inside the box that keeps ``binary``; offers every iterate to ``best``."""
        box = BinarisationBox.around(images, binary, self.eps)
        adversarial = images
        if self.random_start:
            prefix = f"digitguard-binarised-search:{self.seed}:{rank}:"
            adversarial = images + seeded_uniform(images, self.eps, prefix)
        adversarial = box.project(adversarial)
        with torch.no_grad():
            binary_logits = self.model(binary)
        wanted = self._wanted(binary_logits, labels, target)
        for _ in range(self.steps):
            gradient, outcome = self._step(adversarial, binary_logits, wanted)
            best.offer(rows, adversarial, *outcome)
            adversarial = box.project(adversarial + self.step_size * gradient.sign())
        with torch.no_grad():
            best.offer(rows, adversarial, *self._outcome(adversarial, binary, binary_logits))

    def _wanted(
        self, binary_logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """The distribution PGD pulls the input and median views to: the binarised view's own, where
        that view is fooled and a detector is attacked — matching it, not only its class, keeps the
        score low when the binary image is wrong but not confident — else the target class."""
        wanted = F.one_hot(target, binary_logits.shape[1]).to(binary_logits.dtype)
        if self.threshold is None:
            return wanted
        fooled = (binary_logits.argmax(1) != labels).unsqueeze(1)
        return torch.where(fooled, torch.softmax(binary_logits, dim=1), wanted)

    def _step(
        self, adversarial: torch.Tensor, binary_logits: torch.Tensor, wanted: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        inputs = adversarial.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(torch.cat([inputs, median_filter(inputs)]))
            own, median = logits.chunk(2)
            objective = -F.cross_entropy(own, wanted, reduction="none")
            objective = objective - F.cross_entropy(median, wanted, reduction="none")
            scores = scores_from_logits(torch.cat([own, binary_logits, median]))
            if self.threshold is not None:
                objective = objective - self.penalty * torch.relu(scores - self.margin * self.threshold)
            (gradient,) = torch.autograd.grad(objective.sum(), inputs)
        return gradient, (own.detach(), scores.detach())

    def _outcome(
        self, images: torch.Tensor, binary: torch.Tensor, binary_logits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits on ``images`` and their detector scores, ``binary`` being their binarisation."""
        if binary_logits is None:
            binary_logits = self.model(binary)
        own, median = self.model(torch.cat([images, median_filter(images)])).chunk(2)
        return own, scores_from_logits(torch.cat([own, binary_logits, median]))

    def _target_probability(self, binary: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(self.model(binary), dim=1).gather(1, target.unsqueeze(1)).squeeze(1)


def _log_probability_gradient(model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∇ₓ log p_target(x) per image (summed over the batch, so no image depends on the others)."""
    inputs = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        objective = -F.cross_entropy(model(inputs), target, reduction="sum")
        (gradient,) = torch.autograd.grad(objective, inputs)
    return gradient


class _Best:
    """Per image, the best candidate so far: evading (misclassified, score ≤ τ) with the lowest score,
    else the lowest correct-class margin. Without τ, evading means misclassified."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, threshold: float | None) -> None:
        self.images, self.labels, self.threshold = images.clone(), labels, threshold
        self.evaded = torch.zeros(len(images), dtype=torch.bool)
        self.key = torch.full((len(images),), torch.inf)

    def offer(
        self, rows: torch.Tensor, candidates: torch.Tensor, logits: torch.Tensor, scores: torch.Tensor
    ) -> None:
        labels = self.labels[rows]
        correct_logit = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
        margin = correct_logit - logits.scatter(1, labels.unsqueeze(1), -torch.inf).amax(1)
        evades = margin < 0
        if self.threshold is not None:
            evades &= scores <= self.threshold
            key = torch.where(evades, scores, margin)
        else:
            key = margin
        better = (evades & ~self.evaded[rows]) | ((evades == self.evaded[rows]) & (key < self.key[rows]))
        chosen = rows[better]
        self.images[chosen] = candidates[better].detach()
        self.evaded[chosen], self.key[chosen] = evades[better], key[better]
