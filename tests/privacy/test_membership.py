"""The loss-threshold membership audit: its ROC arithmetic, and a model that memorised is caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from digitguard.models.architectures import build_model
from digitguard.privacy.membership import audit, per_sample_loss, roc_curve, tpr_at_fpr
from tests.conftest import KeyPair
from tests.test_detector_cli import run


def test_the_roc_of_separable_and_of_identical_scores() -> None:
    fpr, tpr = roc_curve(np.array([3.0, 2.0]), np.array([1.0, 0.0]))
    assert np.trapezoid(tpr, fpr) == 1.0 and tpr_at_fpr(fpr, tpr, 0.0) == 1.0
    same = audit(np.ones(100), np.ones(100))  # every score tied: no threshold separates anything
    assert (
        same.auc == pytest.approx(0.5) and same.membership_advantage == 0.0 and same.tpr_at_0_1pct_fpr == 0.0
    )


def test_random_losses_are_at_chance_and_lower_member_losses_are_found() -> None:
    rng = np.random.default_rng(0)
    chance = audit(rng.exponential(size=5000), rng.exponential(size=5000))
    assert abs(chance.auc - 0.5) < 0.03 and chance.tpr_at_0_1pct_fpr < 0.01
    leaky = audit(rng.exponential(0.1, size=5000), rng.exponential(1.0, size=5000))
    assert leaky.auc > 0.8 and leaky.membership_advantage > 0.5
    with pytest.raises(ValueError, match="members and non-members"):
        audit(np.array([]), np.ones(3))


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_model_that_memorised_its_training_digits_is_caught(mnist_test_digits, one_thread) -> None:
    images, labels = mnist_test_digits
    x = torch.from_numpy(images[:400]).unsqueeze(1)
    y = torch.from_numpy(labels[:400].astype(np.int64))
    torch.manual_seed(0)
    model = build_model("seed-cnn")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(100):  # 100 "members", trained far past the point of memorising them
        optimizer.zero_grad()
        F.cross_entropy(model(x[:100]), y[:100]).backward()
        optimizer.step()
    result = audit(per_sample_loss(model, x[:100], y[:100]), per_sample_loss(model, x[100:], y[100:]))
    assert result.auc > 0.7 and result.membership_advantage > 0.4  # measured 0.79 and 0.54


def test_the_command_writes_its_result_for_the_threat_model(
    small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "audit"
    args = [
        "--samples",
        "200",
        "--out",
        str(out),
        "--trust",
        str(trusted_key.trust_dir),
        "--data-dir",
        str(mnist_dir),
    ]
    assert run("privacy", "audit", str(small_model_dir), *args) == 0
    document = json.loads((out / "membership-result.json").read_text())
    assert document["members"] == 200 and document["non_members"] == 200
    assert {"auc", "membership_advantage", "tpr_at_0_1pct_fpr"} <= set(document)
    assert (out / "membership-roc.png").read_bytes().startswith(b"\x89PNG")
