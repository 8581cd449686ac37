"""Answers with confidence, honest abstention and an explanation.

A :class:`Predictor` wraps a :class:`VerifiedModel` — it cannot be built from
anything that skipped signature verification. ``predict`` returns a frozen
:class:`Prediction`; the digit is ``None`` when the served decision abstains, and
``reason`` says why, in the words the API, the page, the audit record and the review
queue all use (:class:`Abstention`):

- ``not_a_digit`` — the gate model (a second network with an 11th, "not a digit" class,
  trained on synthetic non-digits: :mod:`digitguard.data.junk`) says it is not a digit;
- ``models_disagree`` — the gate model reads another digit than the primary model: an answer
  needs both (an adversarial example has to fool the robust primary *and* move the gate to the
  same wrong digit);
- ``low_confidence`` — the confidence is below the threshold: the gate's probability of the
  primary's digit when a gate serves, else the primary's top probability;
- ``flagged_adversarial`` / ``flagged_trigger`` — a detector fired.

``explain`` gives Integrated Gradients attributions (Sundararajan et al., 2017) over the
28×28 input for the predicted class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from digitguard.defences.occlusion import OcclusionCalibration
from digitguard.defences.squeeze import Calibration, scores_from_logits, squeezed_views
from digitguard.defences.strip import StripCalibration, superimpose, suspicion_from_logits
from digitguard.defences.trigger import TriggerCalibration
from digitguard.errors import InvalidPixelsError, NothingDrawnError
from digitguard.inference.uncertainty import Ensemble
from digitguard.models.artifact import VerifiedModel

DEFAULT_ABSTAIN_BELOW = 0.7
IG_STEPS = 32
GATE_CLASSES = 11  # ten digits and "not a digit"
NOT_A_DIGIT_CLASS = 10


class Abstention(StrEnum):
    """Why the served decision gave no digit; checked in this order, the first that holds wins."""

    FLAGGED_TRIGGER = "flagged_trigger"
    FLAGGED_ADVERSARIAL = "flagged_adversarial"
    NOT_A_DIGIT = "not_a_digit"
    MODELS_DISAGREE = "models_disagree"
    LOW_CONFIDENCE = "low_confidence"


# What a person is told, on the page and in the review queue.
ABSTENTION_TEXT = {
    Abstention.FLAGGED_TRIGGER: "the drawing may carry a backdoor trigger",
    Abstention.FLAGGED_ADVERSARIAL: "the drawing looks manipulated (adversarial-input detector)",
    Abstention.NOT_A_DIGIT: "this doesn't look like a digit",
    Abstention.MODELS_DISAGREE: "not sure: the two models read different digits",
    Abstention.LOW_CONFIDENCE: "not sure: the model's confidence is below the threshold",
}


class GateModelError(ValueError):
    """A gate model that cannot serve: it must have 11 outputs (ten digits, then "not a digit")."""


@dataclass(frozen=True)
class Prediction:
    digit: int | None
    probabilities: tuple[float, ...]
    confidence: float
    abstained: bool
    model_sha256: str
    # The adversarial-input detector's score (None when none is active) and whether it fired;
    # a flagged input is an abstention whatever its confidence.
    detector_score: float | None = None
    flagged_adversarial: bool = False
    # The backdoor-trigger detector's suspicion score in [0, 1] (None when it is off) and whether
    # it passed the threshold — the input may carry a trigger; also an abstention.
    trigger_score: float | None = None
    flagged_trigger: bool = False
    # Why the decision abstained (None when it answered); the gate model's reading when one serves.
    reason: Abstention | None = None
    gate_digit: int | None = None  # the gate's top class: 0–9, or 10 for "not a digit"
    gate_not_digit: float | None = None  # the gate's probability of "not a digit"
    gate_sha256: str | None = None

    @property
    def top_class(self) -> int:
        return int(np.argmax(self.probabilities))


def check_pixels(pixels: object) -> np.ndarray:
    """Validate an untrusted 28×28 array of numbers in [0, 1]; return it as float32."""
    if isinstance(pixels, list) and any(
        isinstance(value, bool) or not isinstance(value, int | float)
        for row in pixels
        if isinstance(row, list)
        for value in row
    ):
        raise InvalidPixelsError("pixels must be numbers (not booleans, strings or nested arrays)")
    try:
        array = np.asarray(pixels, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidPixelsError("pixels must be a 28x28 array of numbers") from exc
    if array.shape != (28, 28):
        raise InvalidPixelsError(
            f"pixels must have shape 28x28, got {'x'.join(map(str, array.shape)) or 'a scalar'}"
        )
    if not np.isfinite(array).all():
        raise InvalidPixelsError("pixels must be finite numbers (no NaN or Infinity)")
    if array.min() < 0.0 or array.max() > 1.0:
        raise InvalidPixelsError("pixels must lie in [0, 1]")
    if array.max() == 0.0:
        raise NothingDrawnError("nothing drawn: every pixel is 0")
    return array.astype(np.float32)


class Predictor:
    """``detector``: a feature-squeezing calibration; when given, every prediction is scored and an
    input above its threshold is an abstention flagged as possibly adversarial."""

    def __init__(
        self,
        verified: VerifiedModel,
        abstain_below: float = DEFAULT_ABSTAIN_BELOW,
        detector: Calibration | None = None,
        members: Sequence[VerifiedModel] = (),
        trigger_detector: TriggerCalibration | None = None,
        gate: VerifiedModel | None = None,
    ) -> None:
        if not 0.0 <= abstain_below <= 1.0:
            raise ValueError("abstain_below must be in [0, 1]")
        self.verified = verified
        self.detector = detector
        self.trigger_detector = trigger_detector
        # STRIP's blends join the one screening batch; patch occlusion needs a gradient of its own.
        self._overlays = (
            trigger_detector.pool_tensor() if isinstance(trigger_detector, StripCalibration) else None
        )
        self.members = tuple(members)
        primary = _for_inference(verified)
        # With ensemble members the answer is the mean of all the models' probabilities; the
        # detector keeps scoring the primary model, on which its threshold was calibrated.
        self.model = Ensemble([primary, *map(_for_inference, self.members)]) if self.members else primary
        self.detector_model = primary
        self.abstain_below = abstain_below
        self.gate = gate
        self.gate_model = _for_inference(gate) if gate is not None else None
        if self.gate_model is not None:
            outputs = self.gate_model(torch.zeros(1, 1, 28, 28)).shape[1]
            if outputs != GATE_CLASSES:
                raise GateModelError(
                    f"a gate model needs {GATE_CLASSES} outputs (digits, then not-a-digit), not {outputs}"
                )

    @property
    def model_sha256(self) -> str:
        return self.verified.weights_sha256

    @property
    def member_sha256s(self) -> tuple[str, ...]:
        """The primary model's weights hash, then each ensemble member's (one entry without an ensemble)."""
        return (self.model_sha256, *(member.weights_sha256 for member in self.members))

    def predict(self, digit28: np.ndarray) -> Prediction:
        """``digit28``: (28, 28) float in [0, 1], MNIST polarity."""
        x = torch.from_numpy(np.ascontiguousarray(digit28, dtype=np.float32)).view(1, 1, 28, 28)
        with torch.inference_mode():
            screened = self._screened_forward(x)
            logits = self.model(x) if self.members or screened.logits is None else screened.logits
            probabilities = torch.softmax(logits, 1)[0].double()
        if isinstance(self.trigger_detector, OcclusionCalibration):
            screened = dataclasses.replace(
                screened, trigger=float(self.trigger_detector.scores(self.detector_model, x)[0])
            )
        flagged = (
            self.detector is not None
            and screened.score is not None
            and screened.score > self.detector.threshold
        )
        trigger_flagged = (
            self.trigger_detector is not None
            and screened.trigger is not None
            and self.trigger_detector.flags(screened.trigger)
        )
        gate = self._gate_reading(x, int(probabilities.argmax()))
        # With a gate, the confidence the threshold judges is the gate's probability of the primary's
        # answer: a TRADES-trained primary is soft by design (median top probability about 0.7 on
        # clean digits), so its own top probability says little about being right.
        confidence = gate.of_answer if gate is not None else float(probabilities.max())
        reason = abstention_reason(
            top_class=int(probabilities.argmax()),
            confidence=confidence,
            abstain_below=self.abstain_below,
            gate_top=gate.top if gate is not None else None,
            flagged_adversarial=flagged,
            flagged_trigger=trigger_flagged,
        )
        abstained = reason is not None
        return Prediction(
            digit=None if abstained else int(probabilities.argmax()),
            probabilities=tuple(probabilities.tolist()),
            confidence=confidence,
            abstained=abstained,
            model_sha256=self.model_sha256,
            detector_score=screened.score,
            flagged_adversarial=flagged,
            trigger_score=screened.trigger,
            flagged_trigger=trigger_flagged,
            reason=reason,
            gate_digit=gate.top if gate is not None else None,
            gate_not_digit=gate.not_digit if gate is not None else None,
            gate_sha256=self.gate.weights_sha256 if self.gate is not None else None,
        )

    def _gate_reading(self, x: torch.Tensor, answer: int) -> _GateReading | None:
        if self.gate_model is None:
            return None
        with torch.inference_mode():
            probabilities = torch.softmax(self.gate_model(x), 1)[0]
        return _GateReading(
            int(probabilities.argmax()), float(probabilities[NOT_A_DIGIT_CLASS]), float(probabilities[answer])
        )

    def _screened_forward(self, x: torch.Tensor) -> _Screened:
        """One batch through the primary model: the input, its squeezed views when the adversarial
        detector is on, and its blends with the overlay pool when the trigger detector is on."""
        if self.detector is None and self._overlays is None:
            return _Screened(None, None, None)
        views = squeezed_views(x) if self.detector is not None else x
        blends = superimpose(x, self._overlays) if self._overlays is not None else x[:0]
        logits = self.detector_model(torch.cat([views, blends]))
        own = logits[: len(views)]
        return _Screened(
            own[:1],
            float(scores_from_logits(own)[0]) if self.detector is not None else None,
            float(suspicion_from_logits(logits[len(views) :], len(blends))[0]) if len(blends) else None,
        )

    def explain(self, digit28: np.ndarray, target: int) -> np.ndarray:
        """Integrated Gradients (black baseline) for class ``target``: (28, 28), normalised to [-1, 1]."""
        from captum.attr import IntegratedGradients

        x = torch.from_numpy(np.ascontiguousarray(digit28, dtype=np.float32)).view(1, 1, 28, 28)
        attributions = IntegratedGradients(self.model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS, internal_batch_size=IG_STEPS
        )
        heat = attributions.detach()[0, 0].numpy()
        scale = float(np.abs(heat).max())
        return heat / scale if scale > 0 else heat


def abstention_reason(
    *,
    top_class: int,
    confidence: float,
    abstain_below: float,
    gate_top: int | None = None,
    flagged_adversarial: bool = False,
    flagged_trigger: bool = False,
) -> Abstention | None:
    """The served decision's rule: why it abstains, or None when it answers ``top_class``."""
    if flagged_trigger:
        return Abstention.FLAGGED_TRIGGER
    if flagged_adversarial:
        return Abstention.FLAGGED_ADVERSARIAL
    if gate_top == NOT_A_DIGIT_CLASS:
        return Abstention.NOT_A_DIGIT
    if gate_top is not None and gate_top != top_class:
        return Abstention.MODELS_DISAGREE
    if confidence < abstain_below:
        return Abstention.LOW_CONFIDENCE
    return None


@dataclass(frozen=True)
class _GateReading:
    top: int  # 0–9, or NOT_A_DIGIT_CLASS
    not_digit: float
    of_answer: float  # the gate's probability of the primary model's top digit


@dataclass(frozen=True)
class _Screened:
    logits: torch.Tensor | None  # the primary model's on the input itself
    score: float | None  # feature-squeezing score
    trigger: float | None  # trigger detector's suspicion


def _for_inference(verified: VerifiedModel) -> torch.nn.Module:
    # channels_last: oneDNN's convolutions run about 15% faster on one image (same results
    # within float rounding; bench/ablate_predict.py).
    return verified.model.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
