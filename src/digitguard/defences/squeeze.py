"""Feature squeezing: an adversarial-input detector — pure torch, no files.

Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks",
NDSS 2018 (arXiv:1704.01155). For MNIST the paper's squeezers are 1-bit depth reduction and a
2×2 median filter. The score of an input is the largest L1 distance between the model's
probabilities on the input and on a squeezed copy; an input scoring above a threshold chosen
on clean held-out digits (e.g. at a 5% false-positive rate) is flagged as possibly adversarial.

Why it suits MNIST at L∞ budgets up to ε < 0.5: MNIST pixels are mostly exactly 0 or 1, and an
L∞ perturbation of ε cannot move such a pixel across 0.5, so binarisation undoes most of a
perturbation. An attacker who knows the detector must fool the model on the binarised image
as well — which :class:`digitguard.attacks.adaptive.SqueezeAwarePGD` tries, straight through
the binarisation (BPDA, Athalye et al. 2018).

All three views (input, binarised, median-filtered) go through the model as one batch, so the
detector costs one forward pass of three images rather than three passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from digitguard.defences.rejection import threshold_flagging_at_most
from digitguard.errors import DigitguardError

BINARY_THRESHOLD = 0.5
MEDIAN_SIDE = 2
SQUEEZERS = ("bit-depth-1", "median-2x2")
DETECTOR_KIND = "feature-squeezing"
DETECTOR_METRIC = "adversarial_detector"  # where a model manifest's metrics keep the calibration


class DetectorCalibrationError(DigitguardError):
    """A detector calibration is missing, malformed or was made for another detector."""

    exit_code = 2


def binarize(images: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
    """1-bit depth: each pixel becomes 0 or 1. ``straight_through``: the identity's gradient (BPDA)."""
    squeezed = (images > BINARY_THRESHOLD).to(images.dtype)
    return images + (squeezed - images).detach() if straight_through else squeezed


def median_filter(images: torch.Tensor) -> torch.Tensor:
    """2×2 median filter as scipy's ``median_filter(size=2)``: the 3rd of the 4 sorted values.

    Differentiable almost everywhere (the gradient flows to the selected pixel).
    """
    padded = F.pad(images, (0, MEDIAN_SIDE - 1, 0, MEDIAN_SIDE - 1), mode="replicate")
    windows = padded.unfold(2, MEDIAN_SIDE, 1).unfold(3, MEDIAN_SIDE, 1)  # (b, c, h, w, 2, 2)
    flat = windows.reshape(*windows.shape[:4], MEDIAN_SIDE * MEDIAN_SIDE)
    return flat.sort(dim=-1).values[..., (MEDIAN_SIDE * MEDIAN_SIDE) // 2]


def squeezed_views(images: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
    """``(3b, 1, 28, 28)``: the images, then their binarised copies, then their median-filtered ones."""
    return torch.cat([images, binarize(images, straight_through), median_filter(images)])


def scores_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per image, max over squeezers of L1(p(x) − p(squeeze(x))).

    ``logits``: the model's output on :func:`squeezed_views`.
    """
    probabilities = torch.softmax(logits, dim=1).view(3, -1, logits.shape[1])
    distances = (probabilities[1:] - probabilities[0]).abs().sum(dim=2)  # (2, b)
    return distances.max(dim=0).values


@dataclass(frozen=True)
class SqueezeOutput:
    """The model's logits on the images themselves, and each image's detector score (in [0, 2])."""

    logits: torch.Tensor
    scores: torch.Tensor


def squeeze_forward(model: nn.Module, images: torch.Tensor, straight_through: bool = False) -> SqueezeOutput:
    """One batched forward pass over the three views; differentiable when gradients are on."""
    logits = model(squeezed_views(images, straight_through))
    return SqueezeOutput(logits[: len(images)], scores_from_logits(logits))


def detector_scores(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Detector scores of many images (no gradients), in batches."""
    with torch.inference_mode():
        batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        return torch.cat([squeeze_forward(model, batch).scores for batch in batches])


def threshold_at_fpr(clean_scores: torch.Tensor, false_positive_rate: float) -> float:
    """The smallest threshold that flags at most ``false_positive_rate`` of ``clean_scores``."""
    return threshold_flagging_at_most(
        clean_scores, false_positive_rate, DetectorCalibrationError, "false-positive rate"
    )


@dataclass(frozen=True)
class Calibration:
    """A detector threshold and how it was chosen; stored in the signed model manifest."""

    threshold: float
    false_positive_rate: float
    calibration_images: int
    source: str
    kind: str = DETECTOR_KIND

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "squeezers": list(SQUEEZERS),
            "threshold": self.threshold,
            "false_positive_rate": self.false_positive_rate,
            "calibration_images": self.calibration_images,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, values: object) -> Calibration:
        if not isinstance(values, dict) or values.get("kind") != DETECTOR_KIND:
            raise DetectorCalibrationError(f"not a {DETECTOR_KIND} calibration: {values!r}")
        try:
            calibration = cls(
                threshold=float(values["threshold"]),
                false_positive_rate=float(values["false_positive_rate"]),
                calibration_images=int(values["calibration_images"]),
                source=str(values["source"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorCalibrationError(f"malformed {DETECTOR_KIND} calibration: {exc}") from exc
        if list(values.get("squeezers", [])) != list(SQUEEZERS):
            raise DetectorCalibrationError(f"calibration made for squeezers {values.get('squeezers')}")
        if not 0 <= calibration.threshold <= 2:
            raise DetectorCalibrationError(f"threshold {calibration.threshold} outside [0, 2]")
        return calibration


def calibrate(
    model: nn.Module, clean_images: torch.Tensor, false_positive_rate: float, source: str
) -> Calibration:
    """Choose the threshold on clean held-out images so that about ``false_positive_rate`` are flagged."""
    threshold = threshold_at_fpr(detector_scores(model, clean_images), false_positive_rate)
    return Calibration(threshold, false_positive_rate, len(clean_images), source)


def calibration_of(metrics: dict[str, object]) -> Calibration:
    """The calibration a model manifest's metrics carry; :class:`DetectorCalibrationError` if none."""
    if DETECTOR_METRIC not in metrics:
        raise DetectorCalibrationError(
            f"the model carries no {DETECTOR_METRIC} calibration; run `digitguard detector calibrate` first"
        )
    return Calibration.from_dict(metrics[DETECTOR_METRIC])
