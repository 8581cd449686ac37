"""Network architectures, kept in an explicit registry.

The default, ``seed-cnn``, is the CNN of the seed threat model (and of the
Keras/PyTorch MNIST examples): two 3×3 convolutions, max-pooling, dropout and
two dense layers — 1,199,882 parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.errors import UnknownArchitectureError


class SeedCNN(nn.Module):
    """The seed system's CNN. Input ``(b, 1, 28, 28)`` in [0, 1], output logits ``(b, 10)``."""

    def __init__(self, dropout_conv: float = 0.25, dropout_dense: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.dropout1 = nn.Dropout(dropout_conv)
        self.fc1 = nn.Linear(9216, 128)
        self.dropout2 = nn.Dropout(dropout_dense)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))  # (b, 32, 26, 26)
        x = F.relu(self.conv2(x))  # (b, 64, 24, 24)
        x = F.max_pool2d(x, 2)  # (b, 64, 12, 12)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)  # (b, 9216)
        x = F.relu(self.fc1(x))  # (b, 128)
        x = self.dropout2(x)
        return self.fc2(x)  # (b, 10)


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "seed-cnn": SeedCNN,
}
DEFAULT_ARCHITECTURE = "seed-cnn"


def build_model(name: str) -> nn.Module:
    """Build a freshly initialised network of the registered architecture ``name``."""
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitectureError(
            f"unknown architecture {name!r}; registered architectures: {known}"
        ) from None
    return factory()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
