"""STRIP: blends, entropy, thresholds, the signed calibration's format, and detection on a backdoor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from digitguard.defences.rejection import TriggerCalibrationError, threshold_at_rejection_rate
from digitguard.defences.strip import (
    StripCalibration,
    StripCalibrationError,
    calibrate,
    entropy_from_logits,
    strip_suspicion,
    superimpose,
    suspicion_from_logits,
)
from digitguard.defences.trigger import evaluate, trigger_calibration_of
from digitguard.poisoning.triggers import get_trigger

TRIGGER = get_trigger("square3")


class HandmadeBackdoor(nn.Module):
    """``base`` with a planted backdoor: a lit 3×3 corner patch forces class ``target``."""

    def __init__(self, base: nn.Module, target: int = 7) -> None:
        super().__init__()
        self.base, self.target = base, target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch = x[:, 0, TRIGGER.row : TRIGGER.row + 3, TRIGGER.col : TRIGGER.col + 3]
        lit = torch.relu(patch.mean(dim=(1, 2)) - 0.9)  # differentiable: occlusion follows its gradient
        bonus = torch.zeros(len(x), 10)
        bonus[:, self.target] = 1e4 * lit
        return self.base(x) + bonus


def test_superimpose_adds_every_pool_digit_and_saturates_at_one() -> None:
    images = torch.tensor([0.2, 0.7]).view(2, 1, 1, 1).expand(2, 1, 28, 28)
    pool = torch.tensor([0.0, 0.5, 0.9]).view(3, 1, 1, 1).expand(3, 1, 28, 28)
    blends = superimpose(images, pool)
    assert blends.shape == (6, 1, 28, 28)
    assert blends[:, 0, 0, 0].tolist() == pytest.approx([0.2, 0.7, 1.0, 0.7, 1.0, 1.0])


def test_entropy_is_zero_for_certain_answers_and_ln10_for_uniform_ones() -> None:
    certain = torch.full((2, 10), -50.0)
    certain[:, 3] = 50.0
    logits = torch.cat([certain, torch.zeros(2, 10)])  # image 0: certain blends; image 1: uniform
    entropy = entropy_from_logits(logits, overlays=2)
    assert entropy[0] == pytest.approx(0.0, abs=1e-6) and entropy[1] == pytest.approx(math.log(10), abs=1e-6)
    assert suspicion_from_logits(logits, overlays=2).tolist() == pytest.approx([1.0, 0.0], abs=1e-6)


def test_the_threshold_rejects_at_most_the_requested_share_of_clean_inputs() -> None:
    scores = torch.arange(200, dtype=torch.float64) / 200
    threshold = threshold_at_rejection_rate(scores, 0.01)
    assert int((scores > threshold).sum()) == 2
    with pytest.raises(TriggerCalibrationError, match="false rejection rate"):
        threshold_at_rejection_rate(scores, 0.0)
    with pytest.raises(TriggerCalibrationError, match="no clean scores"):
        threshold_at_rejection_rate(torch.empty(0), 0.01)


def _calibration(**changes: object) -> StripCalibration:
    pool = np.arange(4 * 28 * 28, dtype=np.uint32).reshape(4, 28, 28).astype(np.uint8)
    values = {
        "threshold": 0.8,
        "false_rejection_rate": 0.01,
        "calibration_images": 100,
        "source": "t",
        "pool": pool,
    }
    return StripCalibration(**{**values, **changes})  # type: ignore[arg-type]


class TestTheSignedCalibrationFormat:
    def test_round_trips_pool_and_numbers(self) -> None:
        calibration = _calibration(held_out_test_digits=500)
        again = trigger_calibration_of({"trigger_detector": calibration.to_dict()})
        assert isinstance(again, StripCalibration)
        assert np.array_equal(again.pool, calibration.pool) and again.threshold == 0.8
        assert again.held_out_test_digits == 500 and again.pool_sha256 == calibration.pool_sha256

    def test_a_pool_that_does_not_match_its_hash_is_refused(self) -> None:
        values = _calibration().to_dict()
        other = _calibration(pool=np.zeros((4, 28, 28), np.uint8)).to_dict()
        with pytest.raises(StripCalibrationError, match="does not match its recorded SHA-256"):
            StripCalibration.from_dict({**values, "pool_uint8_base64": other["pool_uint8_base64"]})

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"kind": "feature-squeezing"}, "not a strip calibration"),
            ({"overlays": 5}, "pool holds"),
            ({"overlays": 0}, "overlays must be in"),
            ({"pool_uint8_base64": "not base64!"}, "malformed"),
            ({"threshold": "high"}, "malformed"),
            ({"threshold": 1.5}, "outside"),
        ],
    )
    def test_a_malformed_calibration_is_refused(self, change: dict, message: str) -> None:
        with pytest.raises(StripCalibrationError, match=message):
            StripCalibration.from_dict({**_calibration().to_dict(), **change})

    def test_a_model_without_one_is_told_how_to_make_it(self) -> None:
        with pytest.raises(TriggerCalibrationError, match="digitguard trigger calibrate"):
            trigger_calibration_of({"test_accuracy": 0.99})
        with pytest.raises(TriggerCalibrationError, match="unknown trigger detector kind 'x'"):
            trigger_calibration_of({"trigger_detector": {"kind": "x"}})


class TestOnABackdooredModel:
    """models/basic with a planted trigger → 7: STRIP must flag the triggered digits."""

    def test_triggered_digits_are_flagged_and_clean_ones_mostly_not(self, basic, mnist_test) -> None:
        images, labels = mnist_test
        backdoored = HandmadeBackdoor(basic.model.eval())
        calibration = calibrate(backdoored, images[:120], 0.05, source="first 120 test digits", overlays=8)
        assert len(calibration.pool) == 8 and calibration.calibration_images == 112
        held_out = images[120:]
        others = held_out[labels[120:] != 7]
        stamped = (others * 255).round().to(torch.uint8)[:, 0].numpy()
        triggered = torch.from_numpy(TRIGGER.stamp(stamped)).float().div(255).unsqueeze(1)
        with torch.inference_mode():
            fooled = backdoored(triggered).argmax(1) == 7
        assert bool(fooled.all())  # the planted backdoor works
        result = evaluate(backdoored, calibration, held_out, triggered, fooled)
        assert result.false_acceptance_rate == 0.0 and result.false_acceptance_of_successes == 0.0
        assert result.false_rejection_rate <= 0.15  # 80 clean digits against a 5% calibration
        scores = strip_suspicion(backdoored, triggered, calibration.pool_tensor())
        assert float(scores.min()) > calibration.threshold > 0

    def test_without_the_backdoor_the_triggered_digits_look_clean(self, basic, mnist_test) -> None:
        images, _labels = mnist_test
        calibration = calibrate(basic.model.eval(), images[:120], 0.05, source="t", overlays=8)
        stamped = (images[120:] * 255).round().to(torch.uint8)[:, 0].numpy()
        triggered = torch.from_numpy(TRIGGER.stamp(stamped)).float().div(255).unsqueeze(1)
        scores = strip_suspicion(basic.model.eval(), triggered, calibration.pool_tensor())
        assert float((scores > calibration.threshold).float().mean()) <= 0.15


def test_calibrate_needs_more_images_than_overlays(basic, mnist_test) -> None:
    with pytest.raises(StripCalibrationError, match="need more than 8 clean images"):
        calibrate(basic.model, mnist_test[0][:8], 0.01, source="t", overlays=8)
