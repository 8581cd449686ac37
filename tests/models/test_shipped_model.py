"""The release model in models/basic: signed by the project key, trained on verified MNIST, ≥ 99.3%."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from digitguard.data import mnist
from digitguard.models.artifact import load_verified
from digitguard.models.signing import TrustStore
from digitguard.training.loop import predict
from tests.conftest import REPO_ROOT

BASIC = REPO_ROOT / "models" / "basic"
TARGET_ACCURACY = 0.993


@pytest.fixture(scope="module")
def basic():
    return load_verified(BASIC)


class TestReleaseModel:
    def test_verifies_against_the_repository_trust_store_alone(self, basic) -> None:
        assert basic.signer_key_id in TrustStore.from_dirs([REPO_ROOT / "trust"]).keys

    def test_is_the_seed_cnn_trained_on_the_pinned_data(self, basic) -> None:
        manifest = basic.manifest
        assert manifest.architecture == "seed-cnn"
        assert manifest.parameter_count == 1_199_882
        assert manifest.data["files"] == mnist.PINNED_SHA256
        assert manifest.data["verified"] is True and manifest.data["allow_unverified"] is False

    def test_manifest_records_the_target_accuracy(self, basic) -> None:
        assert basic.manifest.metrics["test_accuracy"] >= TARGET_ACCURACY

    def test_measured_test_accuracy_matches_the_manifest_and_the_target(self, basic, mnist_dir: Path) -> None:
        data = mnist.load(mnist_dir)
        predicted = predict(basic.model, torch.from_numpy(data.test.images.copy()))
        accuracy = float((predicted == torch.from_numpy(data.test.labels.astype(np.int64))).double().mean())
        assert accuracy >= TARGET_ACCURACY
        assert accuracy == pytest.approx(basic.manifest.metrics["test_accuracy"], abs=1e-4)


PRIVATE = REPO_ROOT / "models" / "private"


@pytest.fixture(scope="module")
def private():
    return load_verified(PRIVATE)


class TestPrivateReleaseModel:
    """models/private: DP-SGD at ε ≤ 3, δ = 1e-5, and ≥ 98.5% on the full test set (issue 8)."""

    def test_records_a_budget_within_the_target(self, private) -> None:
        record = private.manifest.training["privacy"]
        assert private.manifest.architecture == "scatter-cnn"
        assert record["epsilon"] <= 3.0 and record["delta"] <= 1e-5 and record["accountant"] == "rdp"
        assert record["noise_multiplier"] > 1.0 and record["max_grad_norm"] == 0.1
        assert record["statistics_noise_multiplier"] == 8.0
        assert private.manifest.data["files"] == mnist.PINNED_SHA256

    def test_measured_test_accuracy_matches_the_manifest_and_the_target(
        self, private, mnist_dir: Path
    ) -> None:
        data = mnist.load(mnist_dir)
        predicted = predict(private.model, torch.from_numpy(data.test.images.copy()))
        accuracy = float((predicted == torch.from_numpy(data.test.labels.astype(np.int64))).double().mean())
        assert accuracy >= 0.985
        assert accuracy == pytest.approx(private.manifest.metrics["test_accuracy"], abs=1e-4)
