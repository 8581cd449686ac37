from __future__ import annotations

import itertools

import pytest
import torch

from digitguard.training.augment import random_affine
from digitguard.training.config import TrainConfig
from digitguard.training.loop import one_cycle_lr, predict, to_model_input, train_epoch
from digitguard.training.metrics import evaluate_predictions


class TestLearningRateSchedule:
    def test_warms_up_peaks_and_decays_to_zero(self) -> None:
        lrs = [one_cycle_lr(step, 100, 1.0, 0.1) for step in range(100)]
        assert lrs[0] == pytest.approx(0.1)
        assert max(lrs) == pytest.approx(1.0)
        assert lrs.index(max(lrs)) == 9
        assert lrs[-1] < 0.001
        assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))


class TestAugmentation:
    def test_keeps_shape_and_range_and_is_reproducible(self) -> None:
        images = torch.rand(8, 1, 28, 28)
        first = random_affine(images, torch.Generator().manual_seed(3))
        second = random_affine(images, torch.Generator().manual_seed(3))
        assert first.shape == images.shape
        assert torch.equal(first, second)
        assert first.min() >= 0 and first.max() <= 1.0 + 1e-6
        assert not torch.allclose(first, images)

    def test_keeps_most_of_a_centred_digit_in_the_field(self) -> None:
        images = torch.zeros(16, 1, 28, 28)
        images[:, :, 8:20, 10:18] = 1.0
        moved = random_affine(images, torch.Generator().manual_seed(0))
        assert (moved.sum((1, 2, 3)) / images.sum((1, 2, 3))).min() > 0.7


class TestEpoch:
    def test_same_seed_and_epoch_give_identical_weights(self) -> None:
        from digitguard.models.architectures import build_model

        images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)
        labels = torch.randint(0, 10, (64,))
        results = []
        for _ in range(2):
            torch.manual_seed(0)
            model = build_model("seed-cnn")
            optimizer = torch.optim.Adam(model.parameters(), 1e-3)
            train_epoch(model, optimizer, images, labels, epoch=2, seed=5, batch_size=16, augment=True)
            results.append(model.state_dict())
        assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])

    def test_predict_converts_uint8_to_the_unit_interval(self) -> None:
        assert to_model_input(torch.full((1, 28, 28), 255, dtype=torch.uint8)).max() == 1.0

    def test_predict_returns_one_class_per_image(self, seed_cnn) -> None:
        assert predict(seed_cnn, torch.zeros(7, 28, 28, dtype=torch.uint8), batch_size=3).shape == (7,)


class TestMetrics:
    def test_accuracy_per_class_and_confusion(self) -> None:
        result = evaluate_predictions(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
        assert result.accuracy == 0.75
        assert result.per_class_accuracy[2] == 0.5
        assert result.confusion_matrix[2][1] == 1
        assert result.to_dict()["samples"] == 4

    def test_empty_set_is_refused(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            evaluate_predictions(torch.tensor([]), torch.tensor([]))


class TestConfig:
    def test_round_trips_through_a_dict(self) -> None:
        config = TrainConfig(epochs=3, seed=7)
        assert TrainConfig.from_dict(config.to_dict()) == config

    @pytest.mark.parametrize("field", [{"epochs": 0}, {"batch_size": 0}, {"learning_rate": 0.0}])
    def test_invalid_values_are_refused(self, field) -> None:
        with pytest.raises(ValueError):
            TrainConfig(**field)

    def test_unknown_settings_are_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown training settings"):
            TrainConfig.from_dict({"epochs": 1, "mystery": 2})


class TestMetricsOfAGateModel:
    def test_digits_called_not_a_digit_get_their_own_column_and_count_as_wrong(self) -> None:
        from digitguard.training.metrics import evaluate_predictions

        result = evaluate_predictions(torch.tensor([0, 10, 1, 1]), torch.tensor([0, 0, 1, 2]))
        assert result.accuracy == 0.5
        assert len(result.confusion_matrix[0]) == 11 and result.confusion_matrix[0][10] == 1
        assert result.per_class_accuracy[:3] == (0.5, 1.0, 0.0)
