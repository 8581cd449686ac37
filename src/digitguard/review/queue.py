"""Review samples, decisions and items; the byte form of a model input; the queue's rules.

A sample enters the queue because the model abstained (``reason="abstained"``, no answer) or
because whoever received an answer flagged it as wrong (``reason="flagged"``, optionally with
the label they say is right). An abstained sample keeps *why* the served decision abstained
(an :class:`~digitguard.inference.predictor.Abstention` code, shown to the reviewer in the words
of ``ABSTENTION_TEXT``). A reviewer then records a :class:`Decision`: the true label 0–9, or
"not a digit" for scribbles, letters and other inputs that must not become training data.
A decision is final.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from digitguard.errors import DigitguardError
from digitguard.inference.predictor import ABSTENTION_TEXT, Abstention

SIDE = 28
INPUT_BYTES = SIDE * SIDE
NOT_A_DIGIT = "not_a_digit"
SHOWN_DECIMALS = 4  # what ``?details=1`` returns as ``input``; see input_bytes


class Reason(StrEnum):
    ABSTAINED = "abstained"
    FLAGGED = "flagged"


class Status(StrEnum):
    PENDING = "pending"
    LABELLED = "labelled"
    NOT_A_DIGIT = "not_a_digit"


class ReviewError(DigitguardError):
    """A review-queue rule was broken. Exit status 2."""

    exit_code = 2


class InvalidSampleError(ReviewError):
    """A sample that cannot be queued (wrong input size, hash, probabilities, reason or answer)."""


class InvalidLabelError(ReviewError):
    """A label that is neither a digit 0–9 nor ``not_a_digit``."""


class UnknownItemError(ReviewError):
    """No review item with this id."""


class AlreadyQueuedError(ReviewError):
    """The prediction is already in the queue: one entry per request id."""


class AlreadyReviewedError(ReviewError):
    """The item was already decided: a decision is final."""


class ReviewStoreError(ReviewError):
    """The queue's database could not be read or written."""


def input_bytes(digit28: np.ndarray) -> bytes:
    """The 28×28 model input as 784 unsigned bytes: ``round(255 · x)`` of ``x`` rounded to 4 decimals.

    The 4-decimal step is exactly what the API shows as ``input``, so the input a page was shown,
    posted back, gives the same bytes (and SHA-256) as the input the model saw.
    """
    grid = np.asarray(digit28, dtype=np.float32)
    if grid.shape != (SIDE, SIDE):
        raise InvalidSampleError(f"a model input is 28x28, not {'x'.join(map(str, grid.shape))}")
    shown = np.round(grid, SHOWN_DECIMALS).astype(np.float64)
    return np.rint(np.clip(shown, 0.0, 1.0) * 255.0).astype(np.uint8).tobytes()


def as_grid(data: bytes) -> np.ndarray:
    """The stored 784 bytes as a (28, 28) uint8 array (ink = 255, as in MNIST)."""
    return np.frombuffer(data, dtype=np.uint8).reshape(SIDE, SIDE)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_label(value: object) -> int | None:
    """A reviewer's label: an integer 0–9, or ``"not_a_digit"`` (returned as ``None``)."""
    if value == NOT_A_DIGIT:
        return None
    digit = _digit(value)
    if digit is None:
        raise InvalidLabelError(f"a label is a digit 0-9 or {NOT_A_DIGIT!r}, not {value!r}")
    return digit


def parse_suggestion(value: object) -> int | None:
    """The label a user says is right when flagging: absent/``None``, or an integer 0–9."""
    if value is None:
        return None
    digit = _digit(value)
    if digit is None:
        raise InvalidLabelError(f"a suggested label is a digit 0-9 or null, not {value!r}")
    return digit


def parse_abstention(value: object) -> Abstention | None:
    """An abstention reason code as stored or sent: ``None``, or one of :class:`Abstention`'s values."""
    if value is None:
        return None
    if isinstance(value, str) and value in {reason.value for reason in Abstention}:
        return Abstention(value)
    known = ", ".join(reason.value for reason in Abstention)
    raise InvalidSampleError(f"an abstention reason is one of {known} (or none), not {value!r}")


def _digit(value: object) -> int | None:
    # JSON (and JSON Schema's "integer") does not tell 3 from 3.0, so neither do we; booleans are no digits.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        return None
    return value


@dataclass(frozen=True)
class Sample:
    """A model input and the model's answer to it, as it enters the queue."""

    request_id: str
    reason: Reason
    input: bytes  # 784 bytes, row-major, see input_bytes
    model_sha256: str
    digit: int | None  # None: the model abstained
    probabilities: tuple[float, ...]
    confidence: float
    suggested_label: int | None = None  # what the flagging user says is right (unverified)
    # Why the served decision abstained; None for a flag, and for abstentions queued before the
    # reason was kept (schema version 3).
    abstention_reason: Abstention | None = None

    def __post_init__(self) -> None:
        if len(self.input) != INPUT_BYTES:
            raise InvalidSampleError(f"a queued input is {INPUT_BYTES} bytes (28x28), not {len(self.input)}")
        if len(self.probabilities) != 10:
            raise InvalidSampleError(f"a sample has 10 probabilities, not {len(self.probabilities)}")
        if Reason(self.reason) == Reason.ABSTAINED and self.digit is not None:
            raise InvalidSampleError("an abstained sample has no answer (digit must be None)")
        if self.digit is not None and not 0 <= self.digit <= 9:
            raise InvalidSampleError(f"the model's answer is a digit 0-9, not {self.digit}")
        if self.suggested_label is not None and Reason(self.reason) != Reason.FLAGGED:
            raise InvalidSampleError("only a flagged sample carries a suggested label")
        parse_suggestion(self.suggested_label)
        if self.abstention_reason is not None and Reason(self.reason) != Reason.ABSTAINED:
            raise InvalidSampleError("only an abstained sample carries an abstention reason")
        parse_abstention(self.abstention_reason)

    @property
    def input_sha256(self) -> str:
        return sha256_hex(self.input)

    @property
    def abstention_code(self) -> str | None:
        """The abstention reason as stored and sent (``None`` without a reason)."""
        reason = parse_abstention(self.abstention_reason)
        return None if reason is None else reason.value

    @property
    def abstention_text(self) -> str | None:
        """Why it abstained, in the words the page uses (``None`` without a reason)."""
        reason = parse_abstention(self.abstention_reason)
        return None if reason is None else ABSTENTION_TEXT[reason]


@dataclass(frozen=True)
class Decision:
    """A reviewer's verdict: ``label`` 0–9, or ``None`` for "not a digit"."""

    label: int | None
    reviewer: str  # the audit trail's principal, e.g. "key:0123456789ab"
    time: str

    def __post_init__(self) -> None:
        if self.label is not None:
            parse_label(self.label)
        if not self.reviewer:
            raise InvalidLabelError("a decision names its reviewer")

    @property
    def status(self) -> Status:
        return Status.NOT_A_DIGIT if self.label is None else Status.LABELLED

    @property
    def verdict(self) -> int | str:
        """The label as the API and the trail show it: the digit, or ``"not_a_digit"``."""
        return NOT_A_DIGIT if self.label is None else self.label


@dataclass(frozen=True)
class ReviewItem:
    id: int
    created_at: str
    sample: Sample
    decision: Decision | None = None

    @property
    def status(self) -> Status:
        return Status.PENDING if self.decision is None else self.decision.status
