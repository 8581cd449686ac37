"""Network architectures, kept in an explicit registry.

The default, ``seed-cnn``, is the CNN of the seed threat model (and of the
Keras/PyTorch MNIST examples): two 3×3 convolutions, max-pooling, dropout and
two dense layers — 1,199,882 parameters. ``scatter-cnn`` is the ScatterNet + CNN of
Tramèr & Boneh (ICLR 2021) for differentially private training: a fixed wavelet
scattering transform in front of a small tanh CNN with 33,066 trainable parameters.
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


class SmallCNN(nn.Module):
    """The MNIST network of TRADES (Zhang et al., ICML 2019, arXiv:1901.08573) and of most MNIST
    robustness leaderboards: four 3×3 convolutions (32, 32, 64, 64), two max-poolings and two
    dense layers of 200 — 312,202 parameters, no dropout (dropout makes the attack inside
    adversarial training noisier, not the model more robust). Input ``(b, 1, 28, 28)`` in [0, 1].

    ``classes=11`` is the served decision's gate (``small-cnn-gate``): ten digits and a last
    class, "not a digit", trained on synthetic non-digits (:mod:`digitguard.data.junk`)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3),  # (b, 32, 26, 26)
            nn.ReLU(),
            nn.Conv2d(32, 32, kernel_size=3),  # (b, 32, 24, 24)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (b, 32, 12, 12)
            nn.Conv2d(32, 64, kernel_size=3),  # (b, 64, 10, 10)
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3),  # (b, 64, 8, 8)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (b, 64, 4, 4)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (b, 1024)
            nn.Linear(1024, 200),
            nn.ReLU(),
            nn.Linear(200, 200),
            nn.ReLU(),
            nn.Linear(200, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def small_cnn_gate() -> SmallCNN:
    return SmallCNN(classes=11)


SCATTER_CHANNELS = 81  # J = 2 scales, L = 8 orientations: 1 + J·L + L²·J·(J−1)/2 maps of 7×7


class ScatterCNN(nn.Module):
    """A fixed scattering front end (``frozen_features``) and a trainable ``classifier``.

    The scattering transform (kymatio, J = 2, L = 8) has no parameters; its Morlet filters are
    buffers and so part of the signed weights. Each of its 81 channels is then standardised with
    a mean and variance fixed before training (``feature_mean``, ``feature_var``, also buffers):
    a DP run measures them with noise and counts them in its budget
    (:func:`digitguard.training.private.private_statistics`). Only ``classifier`` learns, which
    is what makes the architecture cheap to train with DP-SGD: the features are computed once per run.
    """

    # Per-image contributions to the statistics are clipped to these L2 norms — the medians over
    # the 5,000 validation digits of seed 0 (outside any DP training set), as Tramèr & Boneh do.
    STATISTICS_CLIP = (0.18, 0.054)  # (spatial means, spatial means of squares)
    feature_mean: torch.Tensor
    feature_var: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        # kymatio's package root imports its 3-D frontend, which needs a SciPy function
        # (sph_harm) removed in SciPy 1.15; the 2-D frontend alone does not.
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

        self.scattering = ScatteringTorch2D(J=2, shape=(28, 28), L=8)
        self.register_buffer("feature_mean", torch.zeros(SCATTER_CHANNELS, 1, 1))
        self.register_buffer("feature_var", torch.ones(SCATTER_CHANNELS, 1, 1))
        self.classifier = nn.Sequential(
            nn.Conv2d(SCATTER_CHANNELS, 16, kernel_size=3, stride=2, padding=1),  # (b, 16, 4, 4)
            nn.Tanh(),
            nn.Conv2d(16, 32, kernel_size=3, stride=1, padding=1),  # (b, 32, 4, 4)
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 32),
            nn.Tanh(),
            nn.Linear(32, 10),
        )

    def scattering_maps(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, 1, 28, 28)`` in [0, 1] → raw scattering maps ``(b, 81, 7, 7)``."""
        return self.scattering(x.contiguous()).flatten(1, 2)

    def standardise(self, maps: torch.Tensor) -> torch.Tensor:
        # A channel without variance carries nothing: it is zeroed rather than blown up.
        scale = torch.where(self.feature_var > 0, (self.feature_var + 1e-5).rsqrt(), 0.0)
        return (maps - self.feature_mean) * scale

    def set_feature_statistics(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        self.feature_mean.copy_(mean.reshape(SCATTER_CHANNELS, 1, 1))
        self.feature_var.copy_(var.reshape(SCATTER_CHANNELS, 1, 1))

    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardise(self.scattering_maps(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.frozen_features(x))


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "seed-cnn": SeedCNN,
    "scatter-cnn": ScatterCNN,
    "small-cnn": SmallCNN,
    "small-cnn-gate": small_cnn_gate,
}
# Architectures with an 11th output, "not a digit": the only ones a run with junk_fraction > 0 trains.
NOT_A_DIGIT_ARCHITECTURES = frozenset({"small-cnn-gate"})
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
