"""PRADA on query streams: natural digits raise no alarm, Jacobian-style synthetic ones do."""

from __future__ import annotations

import numpy as np
import pytest

from digitguard.security.extraction import PradaDetector, PradaSettings


def synthetic_stream(seeds: np.ndarray, rounds: int, step: float = 0.1, seed: int = 0):
    """Papernot-style augmentation: every round adds x + step·sign(direction) for each known x."""
    rng = np.random.default_rng(seed)
    known = list(seeds)
    yield from known
    for _ in range(rounds):
        new = [np.clip(x + step * np.sign(rng.standard_normal(x.shape)), 0, 1) for x in known]
        yield from new
        known += new


def test_replaying_the_test_set_raises_no_alarm(mnist_test_digits) -> None:
    images, labels = mnist_test_digits
    detector = PradaDetector()
    verdicts = [detector.observe("reader", images[i], labels[i]) for i in range(2000)]
    assert not any(v.alarm for v in verdicts)
    assert min(v.statistic for v in verdicts if v.statistic is not None) > 0.9


def test_a_synthetic_query_stream_is_flagged_before_500_queries(mnist_test_digits) -> None:
    images, labels = mnist_test_digits
    detector = PradaDetector()
    seeds = images[:100]
    for count, x in enumerate(synthetic_stream(seeds, rounds=3), start=1):
        verdict = detector.observe("attacker", x, labels[(count - 1) % 100])
        if verdict.alarm:
            break
    assert verdict.alarm and count < 500
    assert detector.is_alarmed("attacker") and not detector.is_alarmed("reader")


def test_exact_repeats_are_not_recorded() -> None:
    detector, x = PradaDetector(), np.full((28, 28), 0.5, np.float32)
    verdicts = [detector.observe("c", x, 3) for _ in range(200)]
    assert verdicts[-1].queries == 200 and verdicts[-1].distances == 0 and not verdicts[-1].alarm


def test_memory_is_bounded_per_class_and_in_clients() -> None:
    rng = np.random.default_rng(0)
    detector = PradaDetector(PradaSettings(max_per_class=5, max_clients=2, min_distances=3, window=10))
    for _ in range(50):
        detector.observe("a", rng.random(784), 1)
    assert detector._clients["a"].classes[1].size <= 5 and len(detector._clients["a"].distances) == 10
    detector.observe("b", rng.random(784), 1)
    detector.observe("c", rng.random(784), 1)
    assert list(detector._clients) == ["b", "c"]  # the least recently seen went first


@pytest.mark.parametrize(
    "settings", [{"delta": 1.5}, {"min_distances": 2}, {"min_distances": 600}, {"max_per_class": 0}]
)
def test_nonsense_settings_are_refused(settings: dict) -> None:
    with pytest.raises(ValueError, match="PRADA"):
        PradaSettings(**settings)
