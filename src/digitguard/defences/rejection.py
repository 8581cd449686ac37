"""What the backdoor-trigger detectors share: their error, and a threshold set by a false rejection rate.

Both detectors (:mod:`~digitguard.defences.strip`, :mod:`~digitguard.defences.occlusion`) give
each input a suspicion score in [0, 1], higher meaning more likely to carry a trigger, and flag
inputs scoring above a threshold chosen on clean held-out digits.
"""

from __future__ import annotations

import torch

from digitguard.errors import DigitguardError


class TriggerCalibrationError(DigitguardError):
    """A trigger detector's calibration is missing, malformed or cannot be made. Exit status 2."""

    exit_code = 2


def threshold_flagging_at_most(
    clean_scores: torch.Tensor, rate: float, error: type[Exception], what: str
) -> float:
    """The smallest threshold above which at most ``rate`` of the clean scores lie — shared by the
    trigger detectors and the adversarial-input detector; ``error`` names the broken rule."""
    if not 0 < rate < 1:
        raise error(f"{what} must be in (0, 1), got {rate}")
    if len(clean_scores) == 0:
        raise error("no clean scores to calibrate on")
    ordered = clean_scores.double().sort().values
    allowed = int(rate * len(ordered))  # clean images that may score above it
    return float(ordered[len(ordered) - 1 - allowed])


def threshold_at_rejection_rate(clean_scores: torch.Tensor, false_rejection_rate: float) -> float:
    """The smallest threshold above which at most ``false_rejection_rate`` of the clean scores lie."""
    return threshold_flagging_at_most(
        clean_scores, false_rejection_rate, TriggerCalibrationError, "false rejection rate"
    )
