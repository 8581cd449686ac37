"""Measure the served decision the way users meet it — pure computation, no files.

Four questions, each answered on sets the decision never trained or calibrated on:

- **clean**: MNIST test digits as 28×28 inputs (the JSON API's path): answered correctly,
  answered wrongly, abstained (and why);
- **drawing styles**: MNIST *test* digits re-drawn in each named style of
  :mod:`digitguard.data.drawing`, put on a canvas as a PNG and brought back through the serving
  input path (:func:`~digitguard.inference.preprocess.decode_png`,
  :func:`~digitguard.inference.preprocess.to_mnist`);
- **non-digits**: synthetic non-digits of every family of :mod:`digitguard.data.junk` (the ones
  the gate trained on and the held-out ones), through the same canvas path: refused or not;
- **adversarial**: per image, the decision's answer under each attack; an image counts as
  *correct-or-abstained* only if under every attack the decision answers its digit or none (the
  worst case per image over all attacks).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from digitguard.attacks.base import BUDGET_TOLERANCE, Attack, check_budget
from digitguard.attacks.sharded import BatchEvaluation, RecordSchema, wilson_interval
from digitguard.data import drawing
from digitguard.errors import NothingDrawnError
from digitguard.inference.decision import ABSTAINED, ServedDecision
from digitguard.inference.preprocess import decode_png, to_mnist
from digitguard.inference.redraw import as_canvas_png


@dataclass(frozen=True)
class Outcomes:
    """How a set of inputs fared: answered correctly or wrongly, or abstained (by reason)."""

    images: int
    correct: int
    wrong: int
    abstained: int
    reasons: dict[str, int] = field(default_factory=dict)

    def rate(self, count: int) -> float:
        return count / self.images if self.images else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "correct": self.correct,
            "wrong": self.wrong,
            "abstained": self.abstained,
            "correct_rate": round(self.rate(self.correct), 6),
            "wrong_rate": round(self.rate(self.wrong), 6),
            "abstained_rate": round(self.rate(self.abstained), 6),
            "reasons": dict(sorted(self.reasons.items())),
        }


def outcomes(
    decision: ServedDecision, inputs: torch.Tensor, labels: torch.Tensor, nothing_drawn: int = 0
) -> Outcomes:
    """Outcomes of ``inputs`` (b, 1, 28, 28); ``nothing_drawn`` more inputs were refused before the model."""
    result = decision.decide(inputs)
    answered = result.answers != ABSTAINED
    reasons = Counter(name for name in result.reason_names() if name is not None)
    if nothing_drawn:
        reasons["nothing_drawn"] += nothing_drawn
    return Outcomes(
        images=len(labels) + nothing_drawn,
        correct=int((answered & (result.answers == labels)).sum()),
        wrong=int((answered & (result.answers != labels)).sum()),
        abstained=int((~answered).sum()) + nothing_drawn,
        reasons=dict(reasons),
    )


@dataclass(frozen=True)
class CanvasInputs:
    inputs: torch.Tensor  # (m, 1, 28, 28): what the serving path made of the canvases it accepted
    kept: np.ndarray  # (m,) indices of the accepted canvases
    nothing_drawn: int


def through_canvas(digits: torch.Tensor, seed: int) -> CanvasInputs:
    """28×28 drawings (b, 1, 28, 28) in [0, 1] → canvas PNGs → the serving input path."""
    rng = np.random.default_rng(seed)
    images = np.rint(digits[:, 0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    return from_pngs([as_canvas_png(image, rng) for image in images])


def from_pngs(pngs: Sequence[bytes]) -> CanvasInputs:
    inputs, kept, refused = [], [], 0
    for index, png in enumerate(pngs):
        try:
            inputs.append(to_mnist(decode_png(png)))
            kept.append(index)
        except NothingDrawnError:
            refused += 1
    stacked = (
        torch.from_numpy(np.stack(inputs).astype(np.float32)).unsqueeze(1)
        if inputs
        else torch.empty(0, 1, 28, 28)
    )
    return CanvasInputs(stacked, np.asarray(kept, dtype=np.int64), refused)


def drawing_styles(
    decision: ServedDecision,
    digits: torch.Tensor,
    labels: torch.Tensor,
    styles: Sequence[str] = tuple(drawing.STYLES),
    seed: int = 0,
) -> dict[str, Outcomes]:
    """Per named style: ``digits`` (test digits, (b, 1, 28, 28)) drawn in it, through the canvas path."""
    results = {}
    for offset, name in enumerate(styles):
        drawn = drawing.styled(digits, name, seed + offset)
        canvas = through_canvas(drawn, seed + offset)
        results[name] = outcomes(decision, canvas.inputs, labels[canvas.kept], canvas.nothing_drawn)
    return results


def pooled(results: dict[str, Outcomes]) -> Outcomes:
    reasons: Counter[str] = Counter()
    for result in results.values():
        reasons.update(result.reasons)
    return Outcomes(
        images=sum(r.images for r in results.values()),
        correct=sum(r.correct for r in results.values()),
        wrong=sum(r.wrong for r in results.values()),
        abstained=sum(r.abstained for r in results.values()),
        reasons=dict(reasons),
    )


@dataclass(frozen=True)
class Refusals:
    """Non-digits: how many the served path refused (any abstention or nothing drawn)."""

    images: int
    refused: int
    answered_digits: dict[str, int]  # the digit answered → how often

    @property
    def refused_rate(self) -> float:
        return self.refused / self.images if self.images else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "refused": self.refused,
            "refused_rate": round(self.refused_rate, 6),
            "answered_digits": dict(sorted(self.answered_digits.items())),
        }


def refusals(decision: ServedDecision, canvas: CanvasInputs) -> Refusals:
    result = decision.decide(canvas.inputs)
    answered = result.answers[result.answers != ABSTAINED]
    counts = Counter(str(int(digit)) for digit in answered)
    images = len(canvas.inputs) + canvas.nothing_drawn
    return Refusals(images, images - len(answered), dict(counts))


@dataclass(frozen=True)
class AttackOutcome:
    attack: str
    settings: dict[str, object]
    answers: tuple[int, ...]  # per image: the decision's answer on the attack's output (−1: abstained)
    max_linf: float


@dataclass(frozen=True)
class WorstCase:
    """Per image, the decision under every attack; ``holds[i]`` when no attack got a wrong answer."""

    indices: tuple[int, ...]
    labels: tuple[int, ...]
    clean_answers: tuple[int, ...]
    attacks: tuple[AttackOutcome, ...]
    holds: tuple[bool, ...]

    @property
    def correct_or_abstained(self) -> float:
        return sum(self.holds) / len(self.holds) if self.holds else 0.0

    def per_attack(self) -> dict[str, float]:
        labels = torch.tensor(self.labels)
        return {
            outcome.attack: float(_holds(torch.tensor(outcome.answers), labels).double().mean())
            for outcome in self.attacks
        }

    def to_dict(self) -> dict[str, object]:
        low, high = wilson_interval(sum(self.holds), len(self.holds))
        return {
            "images": len(self.holds),
            "correct_or_abstained": round(self.correct_or_abstained, 6),
            "wilson_95": [round(low, 6), round(high, 6)],
            "per_attack": {name: round(value, 6) for name, value in self.per_attack().items()},
            "attacks": [
                {"attack": a.attack, "settings": a.settings, "max_linf": a.max_linf} for a in self.attacks
            ],
            "per_image": [
                {
                    "index": index,
                    "label": label,
                    "clean": clean,
                    "answers": {a.attack: a.answers[i] for a in self.attacks},
                    "holds": holds,
                }
                for i, (index, label, clean, holds) in enumerate(
                    zip(self.indices, self.labels, self.clean_answers, self.holds, strict=True)
                )
            ],
        }


def _holds(answers: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (answers == labels) | (answers == ABSTAINED)


def worst_case(
    decision: ServedDecision,
    images: torch.Tensor,
    labels: torch.Tensor,
    indices: Sequence[int],
    attacks: Sequence[Attack],
    batch_size: int = 100,
    progress: Callable[[str, int, int], None] = lambda attack, done, total: None,
) -> WorstCase:
    """Run every attack on every image; an image holds when the decision never answers wrongly
    on any attack's output (nor on the clean image)."""
    clean = decision.decide(images).answers
    holds = _holds(clean, labels)
    results = []
    for attack in attacks:
        answers, max_linf = [], 0.0
        for start in range(0, len(images), batch_size):
            x, y = images[start : start + batch_size], labels[start : start + batch_size]
            adversarial = attack(x, y)
            max_linf = max(max_linf, check_budget(adversarial, x, attack.eps, attack.name))
            answers.append(decision.decide(adversarial).answers)
            progress(attack.name, min(start + batch_size, len(images)), len(images))
        attack_answers = torch.cat(answers) if answers else torch.empty(0, dtype=torch.int64)
        holds &= _holds(attack_answers, labels)
        results.append(
            AttackOutcome(attack.name, dict(attack.settings()), tuple(attack_answers.tolist()), max_linf)
        )
    return WorstCase(
        tuple(int(i) for i in indices),
        tuple(labels.tolist()),
        tuple(clean.tolist()),
        tuple(results),
        tuple(bool(h) for h in holds),
    )


@dataclass(frozen=True)
class ThresholdRow:
    abstain_below: float
    correct_rate: float
    wrong_rate: float


def threshold_table(
    decision: ServedDecision, inputs: torch.Tensor, labels: torch.Tensor, thresholds: Sequence[float]
) -> list[ThresholdRow]:
    """Correct and wrong answer rates of the decision at each confidence threshold, on held-out inputs."""
    original = decision.abstain_below
    rows = []
    try:
        for threshold in thresholds:
            decision.abstain_below = threshold
            result = outcomes(decision, inputs, labels)
            rows.append(ThresholdRow(threshold, result.rate(result.correct), result.rate(result.wrong)))
    finally:
        decision.abstain_below = original
    return rows


def lowest_threshold_within(rows: Sequence[ThresholdRow], max_wrong_rate: float) -> ThresholdRow | None:
    """The lowest threshold (the most answers) whose wrong-answer rate is at most ``max_wrong_rate``."""
    for row in sorted(rows, key=lambda r: r.abstain_below):
        if row.wrong_rate <= max_wrong_rate:
            return row
    return None


# ---------------------------------------------------------------------------------------------
# The adversarial suite as a sharded, resumable run (digitguard.attacks.sharded).


def _field(attack: str) -> str:
    return attack.replace("-", "_")


def decision_record_schema(attack_names: Sequence[str], eps: float) -> RecordSchema:
    """Per image: the label, the decision's clean answer, its answer and L∞ under each attack
    (−1: abstained), and ``holds`` — no answer was a wrong digit."""

    def answers_are_digits_or_abstentions(record: Mapping[str, Any]) -> str | None:
        keys = ["clean", *(f"answer_{_field(a)}" for a in attack_names)]
        return next((f"{k!r} must be −1 or 0–9" for k in keys if not ABSTAINED <= record[k] <= 9), None)

    def holds_matches_answers(record: Mapping[str, Any]) -> str | None:
        keys = ["clean", *(f"answer_{_field(a)}" for a in attack_names)]
        expected = all(record[k] in (record["label"], ABSTAINED) for k in keys)
        return None if record["holds"] == expected else "'holds' contradicts the label and answers"

    def within_budget(record: Mapping[str, Any]) -> str | None:
        for attack in attack_names:
            if not 0 <= record[f"linf_{_field(attack)}"] <= eps + BUDGET_TOLERANCE:
                return f"{attack}: L∞ {record[f'linf_{_field(attack)}']} is outside [0, ε = {eps}]"
        return None

    fields: list[tuple[str, type]] = [("index", int), ("label", int), ("clean", int)]
    for attack in attack_names:
        fields += [(f"answer_{_field(attack)}", int), (f"linf_{_field(attack)}", float)]
    fields.append(("holds", bool))
    rules = (answers_are_digits_or_abstentions, holds_matches_answers, within_budget)
    return RecordSchema("served-decision/1", tuple(fields), rules)


def decision_evaluation(decision: ServedDecision, attacks: Mapping[str, Attack]) -> BatchEvaluation:
    """The per-batch function of the sharded run: every attack (by its name in the records) on the
    batch, the decision on each result."""

    def evaluate(images: torch.Tensor, labels: torch.Tensor, indices: list[int]) -> list[dict[str, Any]]:
        clean = decision.decide(images).answers
        records: list[dict[str, Any]] = [
            {"index": index, "label": int(label), "clean": int(answer)}
            for index, label, answer in zip(indices, labels, clean, strict=True)
        ]
        holds = _holds(clean, labels)
        for name, attack in attacks.items():
            adversarial = attack(images, labels)
            check_budget(adversarial, images, attack.eps, name)
            answers = decision.decide(adversarial).answers
            holds &= _holds(answers, labels)
            distances = (adversarial - images).flatten(1).abs().amax(1)
            for record, answer, distance in zip(records, answers, distances, strict=True):
                record[f"answer_{_field(name)}"] = int(answer)
                record[f"linf_{_field(name)}"] = float(distance)
        for record, held in zip(records, holds, strict=True):
            record["holds"] = bool(held)
        return records

    return evaluate


def decision_summary(attack_names: Sequence[str]) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(records)
        held = sum(r["holds"] for r in records)
        low, high = wilson_interval(held, n)

        def rate(attack: str) -> float:
            key = f"answer_{_field(attack)}"
            return round(sum(r[key] in (r["label"], ABSTAINED) for r in records) / n, 6)

        return {
            "images": n,
            "correct_or_abstained": round(held / n, 6),
            "wilson_95": [round(low, 6), round(high, 6)],
            "clean_correct_or_abstained": round(
                sum(r["clean"] in (r["label"], ABSTAINED) for r in records) / n, 6
            ),
            "per_attack": {attack: rate(attack) for attack in attack_names},
            "max_linf": max(r[f"linf_{_field(a)}"] for r in records for a in attack_names),
        }

    return summarise
