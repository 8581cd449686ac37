"""The training and evaluation loops — pure torch, no files, no printing.

Data stay in memory as uint8 tensors and are converted per batch, which keeps
the loop as fast as a hand-written PyTorch loop (see ``bench/``). Every random
draw of an epoch (shuffle, augmentation, dropout) is derived from the run's
seed and the epoch number, so resuming after epoch k reproduces an
uninterrupted run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.training.augment import AUGMENTATIONS

Progress = Callable[[Iterable[int], int], Iterable[int]]
# (model, images in [0, 1], labels, generator) → (loss to minimise, logits for accuracy)
Objective = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]
]


def no_progress(batches: Iterable[int], _total: int) -> Iterable[int]:
    return batches


def to_model_input(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(b, 28, 28)`` → float ``(b, 1, 28, 28)`` in [0, 1] (MNIST polarity: ink is 1)."""
    return images_u8.unsqueeze(1).float().div_(255.0)


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def one_cycle_lr(step: int, total_steps: int, peak: float, warmup_fraction: float) -> float:
    """Linear warm-up to ``peak``, then cosine decay to zero — a function of the step alone."""
    warmup = max(1, int(total_steps * warmup_fraction))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epoch: int,
    seed: int,
    batch_size: int,
    augment: bool = False,
    augment_style: str = "affine",
    lr_at: Callable[[int], float] | None = None,
    progress: Progress = no_progress,
    objective: Objective | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> EpochResult:
    """One pass over ``images`` (uint8, (n, 28, 28)) and ``labels`` (int64, (n,)).

    ``objective`` replaces plain cross-entropy (adversarial training,
    :mod:`digitguard.training.adversarial`). With ``world_size > 1`` the model is a
    ``DistributedDataParallel`` wrapper and this process trains on its ``rank``'s share of every
    batch (the shuffle is common to all; augmentation and attack noise are drawn per rank);
    the loss and accuracy returned are the whole batch's.
    """
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    torch.manual_seed(epoch_seed(seed, epoch))  # dropout draws from the global generator
    order = torch.randperm(len(images), generator=generator)
    draws = generator if world_size == 1 else torch.Generator().manual_seed(epoch_seed(seed, epoch) + rank)
    steps = math.ceil(len(images) / batch_size)
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for step in progress(range(steps), steps):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch * steps + step)
        index = order[step * batch_size : (step + 1) * batch_size][rank::world_size]
        x, y = to_model_input(images[index]), labels[index]
        if augment:
            x = AUGMENTATIONS[augment_style](x, draws)
        if objective is None:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        else:
            loss, logits = objective(model, x, y, draws)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    if world_size > 1:
        totals = torch.tensor([loss_sum, float(correct), float(seen)], dtype=torch.float64)
        torch.distributed.all_reduce(totals)
        loss_sum, correct, seen = float(totals[0]), int(totals[1]), int(totals[2])
    return EpochResult(epoch, loss_sum / max(1, seen), correct / max(1, seen))


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes for uint8 ``images`` ``(n, 28, 28)``."""
    model.eval()
    chunks = [
        model(to_model_input(images[start : start + batch_size])).argmax(1)
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.long)
