"""Samples, decisions, labels, and the byte form of a model input."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

from digitguard.inference.predictor import ABSTENTION_TEXT, Abstention
from digitguard.review.queue import (
    NOT_A_DIGIT,
    Decision,
    InvalidLabelError,
    InvalidSampleError,
    Reason,
    Status,
    as_grid,
    input_bytes,
    parse_abstention,
    parse_label,
    parse_suggestion,
)
from tests.review.conftest import a_bar, a_sample


class TestInputBytes:
    def test_a_model_input_is_784_bytes_with_ink_255(self) -> None:
        data = input_bytes(a_bar())
        assert len(data) == 784
        grid = as_grid(data)
        assert grid.dtype == np.uint8 and grid[10, 14] == 255 and grid[10, 15] == 128 and grid[0, 0] == 0

    def test_the_input_the_api_shows_gives_the_same_bytes_as_the_input_the_model_saw(self) -> None:
        # The page receives np.round(x, 4) as JSON and posts it back; a flag is matched by these bytes.
        rng = np.random.default_rng(0)
        for _ in range(200):
            seen = rng.random((28, 28)).astype(np.float32)
            shown = json.loads(json.dumps(np.round(seen, 4).tolist()))
            assert input_bytes(np.asarray(shown)) == input_bytes(seen)

    def test_a_changed_pixel_changes_the_bytes(self) -> None:
        changed = a_bar()
        changed[0, 0] = 0.5
        assert input_bytes(changed) != input_bytes(a_bar())

    def test_a_grid_of_another_shape_is_refused(self) -> None:
        with pytest.raises(InvalidSampleError, match="28x28, not 27x28"):
            input_bytes(np.zeros((27, 28)))


class TestLabels:
    @pytest.mark.parametrize("label", [0, 5, 9])
    def test_a_digit_is_a_label(self, label: int) -> None:
        assert parse_label(label) == label

    def test_not_a_digit_is_a_verdict_without_a_label(self) -> None:
        assert parse_label(NOT_A_DIGIT) is None

    def test_an_integral_number_is_the_digit_as_json_schema_has_it(self) -> None:
        assert parse_label(7.0) == 7 and parse_suggestion(3.0) == 3

    @pytest.mark.parametrize("value", [10, -1, True, False, "7", 7.5, float("nan"), None, "not a digit"])
    def test_anything_else_is_refused_naming_the_rule(self, value: object) -> None:
        with pytest.raises(InvalidLabelError, match="a label is a digit 0-9 or 'not_a_digit'"):
            parse_label(value)

    def test_a_suggestion_may_be_absent_but_not_not_a_digit(self) -> None:
        assert parse_suggestion(None) is None and parse_suggestion(3) == 3
        with pytest.raises(InvalidLabelError):
            parse_suggestion(NOT_A_DIGIT)


class TestSample:
    def test_is_frozen(self) -> None:
        with pytest.raises(FrozenInstanceError):
            a_sample().digit = 3  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("changes", "rule"),
        [
            ({"input": bytes(783)}, "784 bytes"),
            ({"probabilities": (0.5, 0.5)}, "10 probabilities"),
            ({"digit": 3}, "abstained sample has no answer"),
            ({"reason": Reason.FLAGGED, "digit": 12}, "digit 0-9"),
            ({"suggested_label": 3}, "only a flagged sample"),
            ({"reason": Reason.FLAGGED, "suggested_label": 11}, "suggested label is a digit"),
            (
                {"reason": Reason.FLAGGED, "digit": 1, "abstention_reason": Abstention.LOW_CONFIDENCE},
                "only an abstained sample carries an abstention reason",
            ),
            ({"abstention_reason": "nothing_drawn"}, "an abstention reason is one of"),
            ({"abstention_reason": 3}, "an abstention reason is one of"),
        ],
    )
    def test_a_broken_rule_is_refused_by_name(self, changes: dict, rule: str) -> None:
        with pytest.raises(
            InvalidSampleError if "suggested label" not in rule else InvalidLabelError, match=rule
        ):
            replace(a_sample(), **changes)

    @pytest.mark.parametrize("reason", list(Abstention))
    def test_an_abstention_keeps_its_reason_in_the_words_the_page_uses(self, reason: Abstention) -> None:
        sample = a_sample(abstention_reason=reason)
        assert sample.abstention_code == reason.value and sample.abstention_text == ABSTENTION_TEXT[reason]
        assert parse_abstention(reason.value) is reason

    def test_a_sample_without_a_reason_has_no_text(self) -> None:
        assert a_sample().abstention_code is None and a_sample().abstention_text is None

    def test_the_input_hash_is_sha256_of_the_784_bytes(self) -> None:
        import hashlib

        sample = a_sample()
        assert sample.input_sha256 == hashlib.sha256(sample.input).hexdigest()


class TestDecision:
    def test_a_label_or_not_a_digit(self) -> None:
        assert Decision(7, "key:abc", "t").status == Status.LABELLED
        assert Decision(7, "key:abc", "t").verdict == 7
        assert Decision(None, "key:abc", "t").status == Status.NOT_A_DIGIT
        assert Decision(None, "key:abc", "t").verdict == NOT_A_DIGIT

    def test_needs_a_reviewer_and_a_valid_label(self) -> None:
        with pytest.raises(InvalidLabelError, match="names its reviewer"):
            Decision(7, "", "t")
        with pytest.raises(InvalidLabelError):
            Decision(10, "key:abc", "t")
