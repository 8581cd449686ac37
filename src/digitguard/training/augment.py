"""Batch data augmentation in torch: small random affine transforms.

Handwriting varies in slant, size and position; random rotations (±10°),
scalings (0.9–1.1) and shifts (±2 px) teach the network that, and are the
usual way the seed CNN gets past 99.3% on MNIST. All draws come from the
caller's generator, so a seeded run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

MAX_ROTATION_DEG = 10.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHIFT_PX = 2.0


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply one random affine transform per image. ``images``: (b, 1, h, w) in [0, 1]."""
    b, _, h, _ = images.shape
    angle = _uniform(b, -MAX_ROTATION_DEG, MAX_ROTATION_DEG, generator) * (math.pi / 180)
    scale = _uniform(b, *SCALE_RANGE, generator)
    shift = _uniform(2 * b, -MAX_SHIFT_PX, MAX_SHIFT_PX, generator).view(b, 2) * (2.0 / h)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (b, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def drawing_or_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Half of the batch (drawn at random) re-drawn as people draw (:mod:`digitguard.data.drawing`),
    the other half moved by :func:`random_affine`: the model learns drawings without forgetting MNIST."""
    from digitguard.data.drawing import render

    drawn = torch.rand(len(images), generator=generator) < 0.5
    out = random_affine(images, generator)
    if bool(drawn.any()):
        out[drawn] = render(images[drawn], generator)
    return out


AUGMENTATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "affine": random_affine,
    "drawing": drawing_or_affine,
}
