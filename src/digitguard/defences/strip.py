"""STRIP: a runtime detector of inputs that carry a backdoor trigger — pure torch, no files.

Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural Networks", ACSAC 2019
(arXiv:1902.06531). Superimpose the input on each of ``N`` clean held-out digits (pixel-wise
sum, saturating at 1, as the paper does for MNIST) and run the model on the blends. A clean
digit blended with other digits gives the model mixed, uncertain answers; a digit carrying a
trigger keeps pulling every blend towards the backdoor's target class, so the mean Shannon
entropy of its predictions is low. The suspicion score is ``1 − entropy / ln 10`` (in [0, 1],
higher is more suspicious, as for :mod:`digitguard.defences.occlusion`); an input scoring above
a threshold, chosen so that about 1% of clean held-out digits score above it (the false
rejection rate), is flagged.

Measured (docs/poisoning.md): it needs a backdoor strong enough to survive the blending — on a
model poisoned with 600 samples it let about 3% of triggered digits through at 1% false
rejection, on one poisoned with 100 samples nearly all of them.

The blending digits (the *overlay pool*) and the threshold are a calibration of one model;
they travel, as uint8 pixels and numbers, inside that model's signed manifest.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from digitguard.defences.rejection import TriggerCalibrationError, threshold_at_rejection_rate

STRIP_KIND = "strip"
DEFAULT_OVERLAYS = 16
MAX_OVERLAYS = 128
MAX_ENTROPY = float(np.log(10))  # nats, ten classes
SIDE = 28


class StripCalibrationError(TriggerCalibrationError):
    """A STRIP calibration is malformed or does not match its pool."""


def superimpose(images: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """``(b·n, 1, 28, 28)``: each of the ``b`` images added to each of the ``n`` pool digits, clipped to 1."""
    blended = images[:, None] + pool[None]  # (b, n, 1, 28, 28)
    return blended.clamp_(max=1.0).reshape(-1, *images.shape[1:])


def entropy_from_logits(logits: torch.Tensor, overlays: int) -> torch.Tensor:
    """Per image, the mean Shannon entropy (nats) of the model's answers on its ``overlays`` blends."""
    log_p = torch.log_softmax(logits, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1)
    return entropy.view(-1, overlays).mean(dim=1)


def suspicion_from_logits(logits: torch.Tensor, overlays: int) -> torch.Tensor:
    """``1 − entropy / ln 10`` per image, from the logits of its ``overlays`` blends."""
    return (1.0 - entropy_from_logits(logits, overlays) / MAX_ENTROPY).clamp_(0.0, 1.0)


def strip_suspicion(
    model: nn.Module, images: torch.Tensor, pool: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """Suspicion score of every image (no gradients), ``batch_size`` images at a time."""
    with torch.inference_mode():
        batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        return torch.cat([suspicion_from_logits(model(superimpose(b, pool)), len(pool)) for b in batches])


def _encode_pool(pool: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(pool, dtype=np.uint8).tobytes()).decode("ascii")


@dataclass(frozen=True)
class StripCalibration:
    """Threshold and overlay pool of a model's STRIP detector; stored in the signed manifest.

    ``pool``: ``(n, 28, 28)`` uint8 clean digits, MNIST polarity (ink high).
    """

    threshold: float
    false_rejection_rate: float
    calibration_images: int
    source: str
    pool: np.ndarray
    # Calibrated on the last N MNIST test digits (for models trained without a validation
    # split); an evaluation must then use only the test digits before them.
    held_out_test_digits: int = 0
    kind: str = STRIP_KIND

    @property
    def pool_sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.pool, dtype=np.uint8).tobytes()).hexdigest()

    def pool_tensor(self) -> torch.Tensor:
        """The pool as the model's input: ``(n, 1, 28, 28)`` float in [0, 1]."""
        return torch.from_numpy(self.pool.astype(np.float32) / 255.0).unsqueeze(1)

    def flags(self, score: float) -> bool:
        return score > self.threshold

    def scores(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return strip_suspicion(model, images, self.pool_tensor())

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "false_rejection_rate": self.false_rejection_rate,
            "calibration_images": self.calibration_images,
            "source": self.source,
            "held_out_test_digits": self.held_out_test_digits,
            "overlays": len(self.pool),
            "pool_sha256": self.pool_sha256,
            "pool_uint8_base64": _encode_pool(self.pool),
        }

    @classmethod
    def from_dict(cls, values: object) -> StripCalibration:
        if not isinstance(values, dict) or values.get("kind") != STRIP_KIND:
            raise StripCalibrationError(f"not a {STRIP_KIND} calibration: {str(values)[:200]}")
        try:
            overlays = int(values["overlays"])
            if not 1 <= overlays <= MAX_OVERLAYS:
                raise ValueError(f"overlays must be in 1..{MAX_OVERLAYS}, got {overlays}")
            raw = base64.b64decode(str(values["pool_uint8_base64"]), validate=True)
            if len(raw) != overlays * SIDE * SIDE:
                raise ValueError(f"pool holds {len(raw)} bytes, not {overlays}×{SIDE}×{SIDE}")
            calibration = cls(
                threshold=float(values["threshold"]),
                false_rejection_rate=float(values["false_rejection_rate"]),
                calibration_images=int(values["calibration_images"]),
                source=str(values["source"]),
                pool=np.frombuffer(raw, dtype=np.uint8).reshape(overlays, SIDE, SIDE).copy(),
                held_out_test_digits=int(values.get("held_out_test_digits", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StripCalibrationError(f"malformed {STRIP_KIND} calibration: {exc}") from exc
        if calibration.pool_sha256 != values.get("pool_sha256"):
            raise StripCalibrationError("the overlay pool does not match its recorded SHA-256")
        if not 0 <= calibration.threshold <= 1:
            raise StripCalibrationError(f"threshold {calibration.threshold} outside [0, 1]")
        return calibration


def calibrate(
    model: nn.Module,
    clean_images: torch.Tensor,
    false_rejection_rate: float,
    source: str,
    overlays: int = DEFAULT_OVERLAYS,
    seed: int = 0,
    held_out_test_digits: int = 0,
) -> StripCalibration:
    """Draw the overlay pool from ``clean_images`` ``(n, 1, 28, 28)`` and set the threshold on the rest."""
    if not 1 <= overlays <= MAX_OVERLAYS:
        raise StripCalibrationError(f"overlays must be in 1..{MAX_OVERLAYS}, got {overlays}")
    if len(clean_images) <= overlays:
        raise StripCalibrationError(f"need more than {overlays} clean images, got {len(clean_images)}")
    order = torch.randperm(len(clean_images), generator=torch.Generator().manual_seed(seed))
    pool_images, scored = clean_images[order[:overlays]], clean_images[order[overlays:]]
    pool = (pool_images[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    pool_input = torch.from_numpy(pool.astype(np.float32) / 255.0).unsqueeze(1)
    threshold = threshold_at_rejection_rate(strip_suspicion(model, scored, pool_input), false_rejection_rate)
    return StripCalibration(threshold, false_rejection_rate, len(scored), source, pool, held_out_test_digits)
