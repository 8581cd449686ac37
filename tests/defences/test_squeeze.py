"""The feature-squeezing detector: squeezers, scores, thresholds and calibrations."""

from __future__ import annotations

import pytest
import torch

from digitguard.attacks.pgd import PGD
from digitguard.defences.squeeze import (
    SQUEEZERS,
    Calibration,
    DetectorCalibrationError,
    binarize,
    calibrate,
    detector_scores,
    median_filter,
    squeeze_forward,
    threshold_at_fpr,
)


class TestSqueezers:
    def test_binarize_is_one_bit_at_one_half_with_an_identity_gradient_when_asked(self) -> None:
        images = torch.tensor([[[[0.0, 0.49, 0.5, 0.51, 1.0]]]], requires_grad=True)
        assert binarize(images).tolist() == [[[[0.0, 0.0, 0.0, 1.0, 1.0]]]]
        binarize(images, straight_through=True).sum().backward()
        assert images.grad is not None and images.grad.eq(1.0).all()

    def test_median_is_the_third_of_four_over_each_2x2_window_edges_replicated(self) -> None:
        images = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
        # windows (row, col) → sorted values → index 2: e.g. (0,0): 1 2 4 5 → 4
        assert median_filter(images).tolist() == [[[[4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [8.0, 9.0, 9.0]]]]

    def test_a_binary_image_scores_zero_against_itself_under_binarisation(self, basic) -> None:
        blank = torch.zeros(1, 1, 28, 28)
        blank[..., 8:20, 13:15] = 1.0  # a binary "1" survives both squeezers almost unchanged
        assert float(detector_scores(basic.model, blank)[0]) < 0.05


class TestThresholds:
    def test_the_threshold_flags_at_most_the_requested_share(self) -> None:
        scores = torch.arange(1000, dtype=torch.float32) / 1000
        threshold = threshold_at_fpr(scores, 0.05)
        assert int((scores > threshold).sum()) == 50

    @pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5])
    def test_a_rate_outside_the_open_unit_interval_is_refused(self, rate: float) -> None:
        with pytest.raises(DetectorCalibrationError, match="false-positive rate"):
            threshold_at_fpr(torch.ones(10), rate)

    def test_calibrations_round_trip_and_malformed_ones_are_refused(self) -> None:
        calibration = Calibration(0.07, 0.045, 5000, "validation split")
        assert Calibration.from_dict(calibration.to_dict()) == calibration
        for broken in (
            {**calibration.to_dict(), "kind": "lid"},
            {**calibration.to_dict(), "threshold": "high"},
            {**calibration.to_dict(), "threshold": 3.0},
            {**calibration.to_dict(), "squeezers": list(reversed(SQUEEZERS))},
            {k: v for k, v in calibration.to_dict().items() if k != "threshold"},
            [1, 2],
        ):
            with pytest.raises(DetectorCalibrationError):
                Calibration.from_dict(broken)


class TestOnTheShippedModel:
    def test_calibrated_on_clean_digits_it_flags_about_that_share_of_other_clean_digits(
        self, basic, mnist_test
    ) -> None:
        images, _labels = mnist_test
        calibration = calibrate(basic.model, images[:100], 0.05, "first 100 test digits")
        flagged = float((detector_scores(basic.model, images[100:]) > calibration.threshold).float().mean())
        assert flagged <= 0.12  # 5% target; 100 other digits, so a few points of sampling noise

    def test_it_flags_most_pgd_examples_that_fool_the_model(self, basic, mnist_test) -> None:
        images, labels = mnist_test
        threshold = calibrate(basic.model, images[100:], 0.05, "test digits 100-199").threshold
        adversarial = PGD(basic.model, 0.3, steps=20)(images[:20], labels[:20])
        output = squeeze_forward(basic.model, adversarial)
        fooled = output.logits.argmax(1) != labels[:20]
        assert int(fooled.sum()) >= 18
        assert float((output.scores[fooled] > threshold).float().mean()) >= 0.8
