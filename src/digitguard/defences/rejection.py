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


def threshold_at_rejection_rate(clean_scores: torch.Tensor, false_rejection_rate: float) -> float:
    """The smallest threshold above which at most ``false_rejection_rate`` of the clean scores lie."""
    if not 0 < false_rejection_rate < 1:
        raise TriggerCalibrationError(f"false rejection rate must be in (0, 1), got {false_rejection_rate}")
    if len(clean_scores) == 0:
        raise TriggerCalibrationError("no clean scores to calibrate on")
    ordered = clean_scores.double().sort().values
    allowed = int(false_rejection_rate * len(ordered))  # clean images that may score above it
    return float(ordered[len(ordered) - 1 - allowed])
