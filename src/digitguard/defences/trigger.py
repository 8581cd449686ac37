"""The backdoor-trigger detector a model carries, whichever kind, and how well it works.

A model manifest's ``metrics["trigger_detector"]`` holds one calibration: patch occlusion
(:mod:`~digitguard.defences.occlusion`, the default of ``digitguard trigger calibrate``) or STRIP
(:mod:`~digitguard.defences.strip`). Serving flags an input whose suspicion score exceeds the
calibration's threshold, as an abstention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from digitguard.defences.occlusion import OCCLUSION_KIND, OcclusionCalibration
from digitguard.defences.rejection import TriggerCalibrationError, threshold_at_rejection_rate
from digitguard.defences.strip import STRIP_KIND, StripCalibration

TRIGGER_METRIC = "trigger_detector"  # where a model manifest's metrics keep the calibration
TriggerCalibration = OcclusionCalibration | StripCalibration
KINDS: dict[str, type[OcclusionCalibration] | type[StripCalibration]] = {
    OCCLUSION_KIND: OcclusionCalibration,
    STRIP_KIND: StripCalibration,
}


def trigger_calibration_of(metrics: dict[str, object]) -> TriggerCalibration:
    """The trigger-detector calibration in a manifest's metrics; :class:`TriggerCalibrationError` if none."""
    if TRIGGER_METRIC not in metrics:
        raise TriggerCalibrationError(
            f"the model carries no {TRIGGER_METRIC} calibration; run `digitguard trigger calibrate` first"
        )
    values = metrics[TRIGGER_METRIC]
    kind = values.get("kind") if isinstance(values, dict) else None
    if kind not in KINDS:
        raise TriggerCalibrationError(f"unknown trigger detector kind {kind!r}; known: {sorted(KINDS)}")
    return KINDS[kind].from_dict(values)


@dataclass(frozen=True)
class TriggerEvaluation:
    """How a detector separates clean from trigger-stamped test digits on one model."""

    threshold: float
    clean_images: int
    false_rejection_rate: float  # clean test digits flagged
    triggered_images: int  # test digits of classes other than the target, stamped
    false_acceptance_rate: float  # of those, not flagged
    backdoor_successes: int  # triggered digits the model reads as the target
    false_acceptance_of_successes: float | None  # of the successes, not flagged (None if none)
    threshold_at_1pct_test_frr: float  # the threshold the test set itself would give at 1%
    false_acceptance_at_1pct_test_frr: float
    false_acceptance_of_successes_at_1pct_test_frr: float | None

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def evaluate(
    model: nn.Module,
    calibration: TriggerCalibration,
    clean: torch.Tensor,
    triggered: torch.Tensor,
    triggered_predicted_target: torch.Tensor,
) -> TriggerEvaluation:
    """``clean``/``triggered``: ``(n, 1, 28, 28)`` test digits without and with the trigger;
    ``triggered_predicted_target``: per triggered digit, whether the model reads it as the target."""
    clean_scores, triggered_scores = calibration.scores(model, clean), calibration.scores(model, triggered)
    successes = triggered_predicted_target.bool()
    oracle = threshold_at_rejection_rate(clean_scores, 0.01)

    def accepted_share(threshold: float, which: torch.Tensor | None = None) -> float | None:
        scores = triggered_scores if which is None else triggered_scores[which]
        return float((scores <= threshold).double().mean()) if len(scores) else None

    return TriggerEvaluation(
        threshold=calibration.threshold,
        clean_images=len(clean),
        false_rejection_rate=float((clean_scores > calibration.threshold).double().mean()),
        triggered_images=len(triggered),
        false_acceptance_rate=accepted_share(calibration.threshold) or 0.0,
        backdoor_successes=int(successes.sum()),
        false_acceptance_of_successes=accepted_share(calibration.threshold, successes),
        threshold_at_1pct_test_frr=oracle,
        false_acceptance_at_1pct_test_frr=accepted_share(oracle) or 0.0,
        false_acceptance_of_successes_at_1pct_test_frr=accepted_share(oracle, successes),
    )
