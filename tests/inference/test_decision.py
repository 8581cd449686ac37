"""The batched served decision applies exactly the rule a single request gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from digitguard.inference.decision import ABSTAINED, REASON_CODES, ServedDecision, correct_or_abstained
from digitguard.inference.predictor import (
    Abstention,
    GateModelError,
    Predictor,
    abstention_reason,
)
from digitguard.models.architectures import build_model
from digitguard.models.artifact import VerifiedModel, load_verified, write_signed_artifact
from tests.conftest import KeyPair
from tests.models.test_artifact import manifest_for


def signed(
    tmp_path: Path, key: KeyPair, architecture: str, seed: int, sharpness: float = 4000.0
) -> VerifiedModel:
    """A random network of ``architecture`` whose last layer is redrawn large: confident, varied answers."""
    torch.manual_seed(seed)
    model = build_model(architecture)
    with torch.no_grad():
        last = model.classifier[-1]
        last.weight.normal_(0.0, sharpness)
        # Centre the logits on these inputs: a random network otherwise gives every input one class.
        features = model.classifier[:-1](model.features(random_inputs()))
        last.bias.copy_(-last(features).mean(0) + last.bias)
    manifest = manifest_for(model)
    manifest = type(manifest)(**{**manifest.__dict__, "architecture": architecture})
    out = write_signed_artifact(tmp_path / f"{architecture}-{seed}", model, manifest, key.private)
    return load_verified(out, [key.trust_dir])


def gate_of(tmp_path: Path, key: KeyPair, primary: VerifiedModel) -> VerifiedModel:
    """A gate that reads digits as ``primary`` does, and says "not a digit" for some inputs."""
    torch.manual_seed(5)
    gate = build_model("small-cnn-gate")
    state = {k: v.clone() for k, v in primary.model.state_dict().items()}
    weight, bias = state.pop("classifier.5.weight"), state.pop("classifier.5.bias")
    gate.load_state_dict(state, strict=False)
    with torch.no_grad():
        gate.classifier[-1].weight[:10] = weight * (1 + 0.02 * torch.randn_like(weight))
        gate.classifier[-1].bias[:10] = bias
        gate.classifier[-1].weight[10] = 1.5 * weight[0]
        gate.classifier[-1].bias[10] = 1.5 * bias[0]
    manifest = manifest_for(gate)
    manifest = type(manifest)(**{**manifest.__dict__, "architecture": "small-cnn-gate"})
    return load_verified(
        write_signed_artifact(tmp_path / "gate", gate, manifest, key.private), [key.trust_dir]
    )


def random_inputs() -> torch.Tensor:
    return torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)) ** 3


class TestTheRule:
    def test_an_answer_needs_confidence_and_the_gate_s_agreement(self) -> None:
        assert abstention_reason(top_class=3, confidence=0.9, abstain_below=0.7, gate_top=3) is None
        assert abstention_reason(top_class=3, confidence=0.9, abstain_below=0.7) is None

    def test_each_reason_wins_in_its_order(self) -> None:
        rule = {"top_class": 3, "confidence": 0.5, "abstain_below": 0.7}
        assert abstention_reason(**rule) == Abstention.LOW_CONFIDENCE
        assert abstention_reason(**rule, gate_top=4) == Abstention.MODELS_DISAGREE
        assert abstention_reason(**rule, gate_top=10) == Abstention.NOT_A_DIGIT
        assert (
            abstention_reason(**rule, gate_top=10, flagged_adversarial=True) == Abstention.FLAGGED_ADVERSARIAL
        )
        assert (
            abstention_reason(**rule, flagged_adversarial=True, flagged_trigger=True)
            == Abstention.FLAGGED_TRIGGER
        )


class TestBatchedDecision:
    def test_it_answers_and_abstains_exactly_as_the_predictor_does(
        self, tmp_path: Path, trusted_key: KeyPair
    ) -> None:
        primary = signed(tmp_path, trusted_key, "small-cnn", seed=1)
        gate = gate_of(tmp_path, trusted_key, primary)
        predictor = Predictor(primary, abstain_below=0.7, gate=gate)
        decision = ServedDecision(primary.model, gate.model, 0.7)
        images = random_inputs()
        batch = decision.decide(images, batch_size=64)
        singles = [predictor.predict(image[0].numpy()) for image in images]
        assert batch.answers.tolist() == [ABSTAINED if p.digit is None else p.digit for p in singles]
        assert batch.reason_names() == [None if p.reason is None else str(p.reason) for p in singles]
        seen = {p.reason for p in singles}
        assert {None, Abstention.MODELS_DISAGREE, Abstention.NOT_A_DIGIT} <= seen, seen
        assert all(p.gate_sha256 == gate.weights_sha256 for p in singles)

    def test_without_a_gate_only_confidence_decides(self, tmp_path: Path, trusted_key: KeyPair) -> None:
        primary = signed(tmp_path, trusted_key, "small-cnn", seed=1, sharpness=400.0)
        decision = ServedDecision(primary.model, None, 0.7)
        images = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        batch = decision.decide(images)
        low = batch.confidence < 0.7
        assert torch.equal(batch.answers == ABSTAINED, low)
        assert set(batch.reason_names()) <= {None, "low_confidence"}

    def test_correct_or_abstained_counts_abstentions_as_holding(self) -> None:
        from digitguard.inference.decision import DecisionBatch

        batch = DecisionBatch(torch.tensor([1, ABSTAINED, 2]), torch.tensor([0, 3, 0]), torch.ones(3))
        assert correct_or_abstained(batch, torch.tensor([1, 5, 3])).tolist() == [True, True, False]
        assert REASON_CODES[3] == Abstention.LOW_CONFIDENCE


class TestGateModel:
    def test_a_gate_without_a_not_a_digit_class_is_refused(
        self, tmp_path: Path, trusted_key: KeyPair
    ) -> None:
        primary = signed(tmp_path, trusted_key, "small-cnn", seed=1)
        with pytest.raises(GateModelError, match="11 outputs"):
            Predictor(primary, gate=signed(tmp_path, trusted_key, "small-cnn", seed=3))

    def test_the_gate_s_reading_is_reported(self, tmp_path: Path, trusted_key: KeyPair) -> None:
        primary = signed(tmp_path, trusted_key, "small-cnn", seed=1)
        gate = signed(tmp_path, trusted_key, "small-cnn-gate", seed=2)
        prediction = Predictor(primary, gate=gate).predict(np.zeros((28, 28), dtype=np.float32) + 0.5)
        assert prediction.gate_digit is not None and 0 <= prediction.gate_digit <= 10
        assert prediction.gate_not_digit is not None and 0.0 <= prediction.gate_not_digit <= 1.0
