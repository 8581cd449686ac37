"""Patch occlusion: a runtime detector of inputs whose answer hangs on one small patch — a trigger.

After SentiNet (Chou, Tramèr & Pellegrino, "SentiNet: Detecting Localized Universal Attacks
Against Deep Learning Systems", IEEE S&P Workshops 2020): a backdoor trigger such as the seed's
3×3 white square is a small region that alone decides the answer. For an input, find the
``window``×``window`` patch holding the most |gradient × input| evidence for the predicted
class, blank it and ask the model again. The suspicion score is

    concentration × (1 − probability of the predicted class with the patch blanked)

— high only when the evidence sits in one patch *and* removing that patch removes the answer.
A handwritten digit's evidence is spread over its strokes, so blanking 9 pixels rarely changes
it. An input scoring above a threshold, chosen so that about 1% of clean held-out digits score
above it (the false rejection rate), is flagged. The same measurement, with the training label
in place of the prediction, is the ``occlusion`` method of ``digitguard data scan``.

Its blind spot, by construction: triggers that are not localised (a blend over the whole image,
a distributed pattern) leave no single patch to find; STRIP (:mod:`digitguard.defences.strip`)
looks for those the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.defences.rejection import TriggerCalibrationError, threshold_at_rejection_rate

OCCLUSION_KIND = "patch-occlusion"
DEFAULT_WINDOW = 3
SIDE = 28


class OcclusionCalibrationError(TriggerCalibrationError):
    """A patch-occlusion calibration is malformed."""


def blank_most_salient_patch(
    model: nn.Module, images: torch.Tensor, classes: torch.Tensor, window: int = DEFAULT_WINDOW
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image ``(b, 1, 28, 28)``: the probability of ``classes`` with the patch of most
    |gradient × input| evidence blanked, and the share of the evidence that patch held."""
    x = images.detach().clone().requires_grad_()
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(x).gather(1, classes[:, None]).sum(), x)
    saliency = (grad * x).abs().detach()
    pooled = F.avg_pool2d(saliency, window, stride=1).flatten(1) * window * window  # (b, positions)
    best, where = pooled.max(1)
    side = SIDE - window + 1
    grid = torch.arange(SIDE)
    rows, cols = (where // side)[:, None], (where % side)[:, None]
    in_rows = (grid[None] >= rows) & (grid[None] < rows + window)
    in_cols = (grid[None] >= cols) & (grid[None] < cols + window)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (b, 28, 28)
    with torch.no_grad():
        probabilities = F.softmax(model(images.detach() * keep[:, None]), dim=1)
    return probabilities.gather(1, classes[:, None])[:, 0], best / saliency.flatten(1).sum(1).clamp_min(1e-12)


def suspicion(
    model: nn.Module, images: torch.Tensor, window: int = DEFAULT_WINDOW, batch_size: int = 500
) -> torch.Tensor:
    """Per image, concentration × (1 − blanked probability) for the model's own predicted class."""
    scores = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        with torch.no_grad():
            classes = model(batch).argmax(1)
        blanked_p, concentration = blank_most_salient_patch(model, batch, classes, window)
        scores.append(concentration * (1 - blanked_p))
    return torch.cat(scores) if scores else torch.empty(0)


@dataclass(frozen=True)
class OcclusionCalibration:
    """Threshold and window of a model's patch-occlusion detector; stored in the signed manifest."""

    threshold: float
    false_rejection_rate: float
    calibration_images: int
    source: str
    window: int = DEFAULT_WINDOW
    held_out_test_digits: int = 0  # as in StripCalibration: test digits an evaluation must not use
    kind: str = OCCLUSION_KIND

    def flags(self, score: float) -> bool:
        return score > self.threshold

    def scores(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return suspicion(model, images, self.window)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "false_rejection_rate": self.false_rejection_rate,
            "calibration_images": self.calibration_images,
            "source": self.source,
            "window": self.window,
            "held_out_test_digits": self.held_out_test_digits,
        }

    @classmethod
    def from_dict(cls, values: object) -> OcclusionCalibration:
        if not isinstance(values, dict) or values.get("kind") != OCCLUSION_KIND:
            raise OcclusionCalibrationError(f"not a {OCCLUSION_KIND} calibration: {str(values)[:200]}")
        try:
            calibration = cls(
                threshold=float(values["threshold"]),
                false_rejection_rate=float(values["false_rejection_rate"]),
                calibration_images=int(values["calibration_images"]),
                source=str(values["source"]),
                window=int(values["window"]),
                held_out_test_digits=int(values.get("held_out_test_digits", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OcclusionCalibrationError(f"malformed {OCCLUSION_KIND} calibration: {exc}") from exc
        if not 1 <= calibration.window <= 8:
            raise OcclusionCalibrationError(f"window must be 1..8 pixels, got {calibration.window}")
        if not 0 <= calibration.threshold <= 1:
            raise OcclusionCalibrationError(f"threshold {calibration.threshold} outside [0, 1]")
        return calibration


def calibrate(
    model: nn.Module,
    clean_images: torch.Tensor,
    false_rejection_rate: float,
    source: str,
    window: int = DEFAULT_WINDOW,
    held_out_test_digits: int = 0,
) -> OcclusionCalibration:
    """Set the threshold on clean held-out images ``(n, 1, 28, 28)`` for the requested rejection rate."""
    threshold = threshold_at_rejection_rate(suspicion(model, clean_images, window), false_rejection_rate)
    return OcclusionCalibration(
        threshold, false_rejection_rate, len(clean_images), source, window, held_out_test_digits
    )
