from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from digitguard.poisoning.scan import (
    ScanConfig,
    cluster_outliers,
    extract_features,
    loss_outliers,
    occlusion_scores,
    scan,
    score,
    spectral_outliers,
    two_means,
)


def class_with_planted_cluster(n: int = 2000, planted: int = 40, seed: int = 0):
    """128-d 'activations': a clean Gaussian class, plus a tight cluster shifted along one direction."""
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=(n, 128)).astype(np.float32)
    direction = rng.normal(size=128)
    direction /= np.linalg.norm(direction)
    poisoned = rng.normal(scale=0.5, size=(planted, 128)) + 12 * direction
    return np.concatenate([clean, poisoned.astype(np.float32)]), np.arange(n, n + planted)


class TestSpectral:
    def test_finds_a_planted_cluster_and_nothing_else(self) -> None:
        activations, planted = class_with_planted_cluster()
        assert set(spectral_outliers(activations, z=8.0)) == set(planted)

    def test_flags_nothing_in_a_clean_gaussian_class(self) -> None:
        activations, _ = class_with_planted_cluster(planted=0)
        assert len(spectral_outliers(activations, z=8.0)) == 0


class TestClustering:
    def test_two_means_separates_two_blobs(self) -> None:
        activations, planted = class_with_planted_cluster()
        assignment = two_means(activations)
        assert len(set(assignment[planted])) == 1
        assert (assignment[: len(activations) - len(planted)] != assignment[planted[0]]).all()

    def test_finds_a_small_separated_cluster_and_nothing_in_a_clean_class(self) -> None:
        activations, planted = class_with_planted_cluster()
        assert set(cluster_outliers(activations, 10, 0.25, 6.0)) == set(planted)
        clean, _ = class_with_planted_cluster(planted=0)
        assert len(cluster_outliers(clean, 10, 0.25, 6.0)) == 0


class TestLoss:
    def test_flags_confident_contradictions_of_the_label_only(self) -> None:
        probabilities = np.array(
            [
                [0.98, 0.02] + [0.0] * 8,  # labelled 1, model sure it is 0: flagged
                [0.60, 0.005, 0.395] + [0.0] * 7,  # labelled 1, but the model is not sure: kept
                [0.02, 0.98] + [0.0] * 8,  # labelled 1 and agrees: kept
            ],
            dtype=np.float32,
        )
        flagged = loss_outliers(probabilities, np.array([1, 1, 1]), 0.03, 0.95)
        assert list(flagged) == [0]


class TestScore:
    def test_recall_and_false_removals(self) -> None:
        result = score([1, 2, 3, 10], poisoned=[1, 2, 5, 6], samples=100)
        assert result.recall == 0.5 and result.clean_removed == 2
        assert result.false_removal_rate == pytest.approx(2 / 96)


class LinearOnFeatures(nn.Module):
    """A 'model' whose penultimate layer is the flattened image: enough to test the plumbing."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


def test_extract_features_reads_the_input_of_the_last_linear_layer() -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    features = extract_features(LinearOnFeatures(), images, batch_size=2)
    assert np.allclose(features.activations, images.reshape(5, -1) / 255.0)
    assert np.allclose(features.probabilities.sum(1), 1.0, atol=1e-5)


def test_scan_reports_per_class_counts_and_the_union_of_methods() -> None:
    images = np.zeros((40, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 4).astype(np.uint8)
    report = scan(LinearOnFeatures(), images, labels, ScanConfig(methods=("spectral", "loss")))
    assert report.methods == ("spectral", "loss")
    assert sum(c.samples for c in report.per_class) == 40
    assert set(report.flagged) == set(report.by_method["spectral"]) | set(report.by_method["loss"])
    with pytest.raises(ValueError, match="unknown scan methods"):
        scan(LinearOnFeatures(), images, labels, ScanConfig(methods=("magic",)))


class PatchReader(nn.Module):
    """Linear: class 7 reads the bottom-right trigger square, class 3 reads the top-left 20x20 block."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)
        weight = torch.zeros(10, 28, 28)
        weight[7, 24:27, 24:27] = 4.0
        weight[3, :20, :20] = 0.05
        with torch.no_grad():
            self.fc.weight.copy_(weight.flatten(1))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


def test_occlusion_flags_a_sample_whose_label_rests_on_one_small_patch() -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[:, :20, :20] = 255  # a "3" on both
    images[0, 24:27, 24:27] = 255  # the trigger on the first, which is labelled 7
    label_p, concentration = occlusion_scores(PatchReader(), images, np.array([7, 3]))
    assert label_p[0] < 0.01 and concentration[0] > 0.99
    assert label_p[1] > 0.99 and concentration[1] < 0.05
