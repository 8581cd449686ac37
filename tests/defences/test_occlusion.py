"""Patch occlusion at run time: the score, its threshold, the signed calibration, a planted backdoor."""

from __future__ import annotations

import pytest
import torch

from digitguard.defences.occlusion import (
    OcclusionCalibration,
    OcclusionCalibrationError,
    blank_most_salient_patch,
    calibrate,
    suspicion,
)
from digitguard.defences.trigger import evaluate, trigger_calibration_of
from tests.defences.test_strip import TRIGGER, HandmadeBackdoor
from tests.poisoning.test_scan import PatchReader


def _images() -> torch.Tensor:
    images = torch.zeros(2, 1, 28, 28)
    images[:, :, :20, :20] = 1.0  # a "3" on both
    images[0, :, 24:27, 24:27] = 1.0  # and the trigger on the first
    return images


def test_the_patch_that_decides_the_answer_is_found_and_blanked() -> None:
    blanked_p, concentration = blank_most_salient_patch(PatchReader(), _images(), torch.tensor([7, 3]))
    assert blanked_p[0] < 0.01 and concentration[0] > 0.99  # the trigger alone made it a 7
    assert blanked_p[1] > 0.99 and concentration[1] < 0.05  # a 3's evidence is spread out


def test_suspicion_is_high_only_for_the_triggered_input() -> None:
    scores = suspicion(PatchReader(), _images())
    assert scores[0] > 0.98 and scores[1] < 0.05


def test_the_signed_calibration_round_trips_and_refuses_nonsense() -> None:
    calibration = OcclusionCalibration(0.2, 0.01, 500, "tests", window=3, held_out_test_digits=100)
    assert trigger_calibration_of({"trigger_detector": calibration.to_dict()}) == calibration
    for change, message in (
        ({"window": 0}, "window must be"),
        ({"threshold": -1}, "outside"),
        ({"window": "x"}, "malformed"),
    ):
        with pytest.raises(OcclusionCalibrationError, match=message):
            OcclusionCalibration.from_dict({**calibration.to_dict(), **change})


def test_on_a_backdoored_model_triggered_digits_are_flagged_and_clean_ones_rarely(basic, mnist_test) -> None:
    images, labels = mnist_test
    backdoored = HandmadeBackdoor(basic.model.eval())
    calibration = calibrate(backdoored, images[:100], 0.02, source="first 100 test digits")
    held_out, others = images[100:], images[100:][labels[100:] != 7]
    stamped = torch.from_numpy(TRIGGER.stamp((others * 255).round().to(torch.uint8)[:, 0].numpy()))
    triggered = stamped.float().div(255).unsqueeze(1)
    result = evaluate(
        backdoored, calibration, held_out, triggered, torch.ones(len(triggered), dtype=torch.bool)
    )
    assert result.false_acceptance_rate <= 0.02  # 90 triggered digits
    assert result.false_rejection_rate <= 0.06  # 100 clean digits, calibrated at 2% on another 100
