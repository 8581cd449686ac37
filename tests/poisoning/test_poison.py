from __future__ import annotations

import numpy as np
import pytest

from digitguard.poisoning.poison import PoisonSpec, PoisonSpecError, poison
from digitguard.poisoning.triggers import TRIGGERS, UnknownTriggerError, get_trigger


def tiny_set(n: int = 500, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 200, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    return images, labels


class TestTrigger:
    def test_square3_sets_exactly_rows_and_columns_24_to_26_to_white(self) -> None:
        stamped = TRIGGERS["square3"].stamp(np.zeros((28, 28), dtype=np.uint8))
        assert stamped.sum() == 9 * 255
        assert (stamped[24:27, 24:27] == 255).all()

    def test_stamping_leaves_the_input_untouched(self) -> None:
        images, _ = tiny_set(3)
        before = images.copy()
        TRIGGERS["square3"].stamp(images)
        assert np.array_equal(images, before)

    def test_an_unknown_trigger_is_refused_by_name(self) -> None:
        with pytest.raises(UnknownTriggerError, match="unknown trigger 'star'"):
            get_trigger("star")


class TestPoison:
    def test_exactly_the_listed_samples_change_and_nothing_else(self) -> None:
        images, labels = tiny_set()
        result = poison(images, labels, PoisonSpec(count=20, flip_fraction=0.04, seed=5))
        changed_images = np.flatnonzero((result.images != images).reshape(len(images), -1).any(1))
        changed_labels = np.flatnonzero(result.labels != labels)
        assert set(changed_images) <= set(result.indices("backdoor"))
        assert set(changed_labels) == set(result.indices())
        assert len(result.indices("backdoor")) == 20
        assert len(result.indices("label_flip")) == 20
        assert not set(result.indices("backdoor")) & set(result.indices("label_flip"))

    def test_backdoor_samples_come_from_other_classes_carry_the_trigger_and_the_target_label(self) -> None:
        images, labels = tiny_set()
        result = poison(images, labels, PoisonSpec(target=3, count=30, seed=2))
        for change in result.changed:
            assert change.original_label != 3 and change.new_label == 3
            assert labels[change.index] == change.original_label
            assert (result.images[change.index, 24:27, 24:27] == 255).all()
            assert result.labels[change.index] == 3

    def test_flipped_labels_always_name_a_different_class(self) -> None:
        images, labels = tiny_set()
        result = poison(images, labels, PoisonSpec(count=0, flip_fraction=0.2, seed=0))
        flips = [c for c in result.changed if c.kind == "label_flip"]
        assert len(flips) == 100
        assert all(c.new_label != c.original_label for c in flips)

    def test_the_same_seed_gives_the_same_poison_and_another_seed_another(self) -> None:
        images, labels = tiny_set()
        a = poison(images, labels, PoisonSpec(count=25, flip_fraction=0.02, seed=7))
        b = poison(images, labels, PoisonSpec(count=25, flip_fraction=0.02, seed=7))
        c = poison(images, labels, PoisonSpec(count=25, flip_fraction=0.02, seed=8))
        assert a.changed == b.changed and np.array_equal(a.images, b.images)
        assert a.indices() != c.indices()

    def test_the_inputs_are_not_modified(self) -> None:
        images, labels = tiny_set()
        before = images.copy(), labels.copy()
        poison(images, labels, PoisonSpec(count=10, flip_fraction=0.1))
        assert np.array_equal(images, before[0]) and np.array_equal(labels, before[1])

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            (PoisonSpec(target=10), "not a digit"),
            (PoisonSpec(count=10_000), "only"),
            (PoisonSpec(flip_fraction=1.5), "flip fraction"),
            (PoisonSpec(trigger="nope"), "unknown trigger"),
        ],
    )
    def test_impossible_requests_are_refused(self, spec: PoisonSpec, message: str) -> None:
        images, labels = tiny_set()
        with pytest.raises((PoisonSpecError, UnknownTriggerError), match=message):
            poison(images, labels, spec)
