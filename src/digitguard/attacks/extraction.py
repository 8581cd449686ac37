"""A black-box model-extraction attack: label queries to an oracle, train a substitute — no I/O here.

Papernot et al., "Practical Black-Box Attacks against Machine Learning", AsiaCCS 2017
(arXiv:1602.02697): start from a few natural digits, ask the oracle (the served model, through
its public API) for their labels, train a substitute, then grow the query set by Jacobian-based
augmentation — every known ``x`` gives a new query ``x + λ·sign(∂F_sub[label(x)]/∂x)`` — and
repeat until the query budget is spent. ``strategy="pool"`` instead spends the budget on further
natural digits from an unlabelled pool (the other attacker of the issue, and the one PRADA is
not built to see).

The oracle is anything with ``label(images) -> labels`` (:class:`Oracle`); the HTTP client lives
in the CLI adapter. Each round reports the substitute's test accuracy, its agreement with a
reference copy of the served model, and how often FGSM examples crafted on the substitute
transfer to that copy — the red team's yardstick, never used by the attacker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F


class Oracle(Protocol):
    def label(self, images: torch.Tensor) -> torch.Tensor:
        """Labels ``(n,)`` for images ``(n, 1, 28, 28)`` (−1 where the answer names no class, e.g. an
        abstention without probabilities); fewer when the service stops answering (the answered prefix)."""
        ...


class Substitute(nn.Module):
    """The attacker's own small CNN (it need not know the served architecture)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


@dataclass(frozen=True)
class ExtractionSettings:
    queries: int = 1000
    strategy: str = "jacobian"  # or "pool"
    seeds: int = 100  # natural digits the attacker starts with
    step: float = 0.1  # λ of the augmentation
    epochs: int = 10  # substitute training epochs per round
    batch_size: int = 64
    transfer_eps: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in ("jacobian", "pool"):
            raise ValueError(f"strategy must be jacobian or pool, not {self.strategy!r}")
        if self.queries < 1 or not self.seeds >= 1 or self.epochs < 1:
            raise ValueError("queries, seeds and epochs must be at least 1")


@dataclass(frozen=True)
class RoundResult:
    queries: int  # answered so far
    substitute_accuracy: float  # on the evaluation digits' true labels
    agreement: float  # with the reference copy of the served model
    transfer_success: float  # FGSM examples on the substitute that fool the reference copy


@dataclass(frozen=True)
class ExtractionResult:
    settings: ExtractionSettings
    rounds: tuple[RoundResult, ...]
    refused_at: int | None  # the query the service stopped answering at (None: never)

    def to_dict(self) -> dict[str, object]:
        return {
            "settings": dict(self.settings.__dict__),
            "rounds": [dict(r.__dict__) for r in self.rounds],
            "refused_at": self.refused_at,
        }


def train_substitute(images: torch.Tensor, labels: torch.Tensor, settings: ExtractionSettings) -> Substitute:
    torch.manual_seed(settings.seed)
    model = Substitute()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(settings.seed)
    model.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    return model.eval()


def jacobian_augment(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, step: float
) -> torch.Tensor:
    """``x + step·sign(∂ logit[label] / ∂x)`` for each image, clipped to [0, 1]."""
    x = images.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(x).gather(1, labels[:, None]).sum(), x)
    return (images + step * grad.sign()).clamp(0.0, 1.0).detach()


def _fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    x = images.clone().requires_grad_()
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
    return (images + eps * grad.sign()).clamp(0.0, 1.0).detach()


def measure(
    substitute: nn.Module,
    reference: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    queries: int,
) -> RoundResult:
    with torch.no_grad():
        mine, theirs = substitute(images).argmax(1), reference(images).argmax(1)
    correct = theirs == labels
    adversarial = _fgsm(substitute, images[correct], labels[correct], eps)
    with torch.no_grad():
        fooled = reference(adversarial).argmax(1) != labels[correct]
    return RoundResult(
        queries=queries,
        substitute_accuracy=float((mine == labels).double().mean()),
        agreement=float((mine == theirs).double().mean()),
        transfer_success=float(fooled.double().mean()) if len(adversarial) else 0.0,
    )


def extract(
    oracle: Oracle,
    pool: torch.Tensor,
    evaluation: tuple[torch.Tensor, torch.Tensor],
    reference: nn.Module,
    settings: ExtractionSettings,
    progress: Callable[[RoundResult], None] = lambda _r: None,
) -> ExtractionResult:
    """Spend ``settings.queries`` on ``oracle``; ``pool``: unlabelled natural digits ``(n, 1, 28, 28)``."""
    seeds = pool[: settings.seeds]
    answered = oracle.label(seeds)
    refused_at = len(answered) + 1 if len(answered) < len(seeds) else None
    known, labels = _labelled(seeds[: len(answered)], answered)
    spent, rounds, next_natural = len(answered), [], settings.seeds
    while len(known):
        substitute = train_substitute(known, labels, settings)
        result = measure(substitute, reference, *evaluation, settings.transfer_eps, spent)
        rounds.append(result)
        progress(result)
        if spent >= settings.queries or refused_at is not None:
            break
        budget = settings.queries - spent
        if settings.strategy == "jacobian":
            step = settings.step if len(rounds) % 2 else -settings.step  # alternate, as Papernot et al.
            new = jacobian_augment(substitute, known, labels, step)[:budget]
        else:
            new = pool[next_natural : next_natural + budget]
            next_natural += len(new)
            if len(new) == 0:
                break
        answered = oracle.label(new)
        if len(answered) < len(new):
            refused_at = spent + len(answered) + 1
        more, more_labels = _labelled(new[: len(answered)], answered)
        known, labels = torch.cat([known, more]), torch.cat([labels, more_labels])
        spent += len(answered)
    return ExtractionResult(settings, tuple(rounds), refused_at)


def _labelled(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = labels >= 0
    return images[keep], labels[keep]
