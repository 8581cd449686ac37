"""The served decision on a batch, in torch: what attacks and evaluations measure.

:class:`~digitguard.inference.predictor.Predictor` answers one request; this module applies the
same rule (:func:`~digitguard.inference.predictor.abstention_reason`) to a batch, with the
networks' logits still differentiable, so that the decision users get is the thing attacked:
an image counts as *correct-or-abstained* when the decision answers its true digit or gives no
digit at all, and an attack succeeds only when the decision answers a wrong digit.

Detectors (feature squeezing, trigger screening) are not part of this batch decision: the served
default runs without them, and their own adaptive evaluations live in
:mod:`digitguard.defences.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from digitguard.inference.predictor import NOT_A_DIGIT_CLASS, Abstention

ABSTAINED = -1  # the answer of an image the decision gave no digit for

# Reason codes as small integers in batched results (0: answered).
REASON_CODES: tuple[Abstention | None, ...] = (
    None,
    Abstention.NOT_A_DIGIT,
    Abstention.MODELS_DISAGREE,
    Abstention.LOW_CONFIDENCE,
)


@dataclass(frozen=True)
class DecisionBatch:
    answers: torch.Tensor  # (b,) int64: the digit answered, or ABSTAINED
    reasons: torch.Tensor  # (b,) int64: index into REASON_CODES (0 when answered)
    confidence: torch.Tensor  # (b,) what the threshold judges (the gate's probability of the answer, if any)

    def reason_names(self) -> list[str | None]:
        return [None if code == 0 else str(REASON_CODES[code]) for code in self.reasons.tolist()]


class ServedDecision(nn.Module):
    """The primary (robust) model, the optional gate and the confidence threshold.

    ``forward`` returns the primary model's logits (so any attack on a classifier attacks the
    primary); :meth:`gate_logits` gives the gate's; :meth:`decide` applies the served rule.
    """

    def __init__(self, primary: nn.Module, gate: nn.Module | None, abstain_below: float) -> None:
        super().__init__()
        self.primary = primary
        self.gate = gate
        self.abstain_below = abstain_below

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.primary(x)

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.gate is None else self.gate(x)

    @torch.no_grad()
    def decide(self, x: torch.Tensor, batch_size: int = 1000) -> DecisionBatch:
        parts = [self._decide(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
        if not parts:
            empty = torch.empty(0, dtype=torch.int64)
            return DecisionBatch(empty, empty, torch.empty(0))
        return DecisionBatch(*(torch.cat(values) for values in zip(*map(_fields, parts), strict=True)))

    def _decide(self, x: torch.Tensor) -> DecisionBatch:
        probabilities = torch.softmax(self.primary(x).float(), 1)
        confidence, top = probabilities.max(1)
        gate = self.gate_logits(x)
        if gate is not None:  # the threshold judges the gate's probability of the primary's digit
            confidence = torch.softmax(gate.float(), 1)[torch.arange(len(x)), top]
        reasons = torch.zeros(len(x), dtype=torch.int64)
        reasons[confidence < self.abstain_below] = REASON_CODES.index(Abstention.LOW_CONFIDENCE)
        if gate is not None:
            gate_top = gate.argmax(1)
            reasons[gate_top != top] = REASON_CODES.index(Abstention.MODELS_DISAGREE)
            reasons[gate_top == NOT_A_DIGIT_CLASS] = REASON_CODES.index(Abstention.NOT_A_DIGIT)
        answers = torch.where(reasons == 0, top, torch.full_like(top, ABSTAINED))
        return DecisionBatch(answers, reasons, confidence)


def _fields(batch: DecisionBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return batch.answers, batch.reasons, batch.confidence


def correct_or_abstained(decision: DecisionBatch, labels: torch.Tensor) -> torch.Tensor:
    """(b,) bool: the decision answered the true digit or gave none."""
    return (decision.answers == labels) | (decision.answers == ABSTAINED)
