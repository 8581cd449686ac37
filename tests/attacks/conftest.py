from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from digitguard.data import mnist
from digitguard.models.artifact import VerifiedModel, load_verified
from digitguard.training.loop import to_model_input
from tests.conftest import REPO_ROOT


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # These tests run small batches on shared 2-core machines, where two torch threads per process
    # oversubscribe the cores: measured 71 s instead of 13 s for one AutoAttack call.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model() -> nn.Module:
    """A linear classifier: its input gradient has a closed form to check attacks against."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()


@pytest.fixture
def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(12, 1, 28, 28, generator=generator)
    images[:, :, :4] = 0.0  # saturated pixels, as in MNIST, to exercise the clipping
    images[:, :, -4:] = 1.0
    return images, torch.randint(0, 10, (12,), generator=generator)


@pytest.fixture(scope="session")
def basic() -> VerifiedModel:
    return load_verified(REPO_ROOT / "models" / "basic")


@pytest.fixture(scope="session")
def mnist_test(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.Tensor, torch.Tensor]:
    from tests.conftest import SHARED_MNIST

    if not (Path(SHARED_MNIST) / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    test = mnist.load(SHARED_MNIST).test
    images = to_model_input(torch.from_numpy(test.images[:200].copy()))
    return images, torch.from_numpy(test.labels[:200].astype(np.int64))
