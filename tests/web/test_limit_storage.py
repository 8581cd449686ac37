from __future__ import annotations

import threading

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from digitguard.web import create_app, limit_storage
from digitguard.web.limit_storage import SWEEP_EVERY, FixedWindowMemoryStorage


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(limit_storage.time, "time", clock)
    return clock


def test_the_scheme_is_registered() -> None:
    assert isinstance(storage_from_string("fixed-memory://"), FixedWindowMemoryStorage)


def test_a_window_counts_up_to_its_limit_and_refuses_past_it(clock: Clock) -> None:
    limiter = FixedWindowRateLimiter(FixedWindowMemoryStorage())
    three_a_minute = parse("3/minute")
    assert [limiter.hit(three_a_minute, "k") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(three_a_minute, "other")  # keys count apart


def test_the_window_resets_when_it_expires(clock: Clock) -> None:
    limiter = FixedWindowRateLimiter(FixedWindowMemoryStorage())
    one_a_minute = parse("1/minute")
    assert limiter.hit(one_a_minute, "k")
    assert not limiter.hit(one_a_minute, "k")
    reset_at = limiter.get_window_stats(one_a_minute, "k").reset_time
    assert reset_at == pytest.approx(clock.now + 60)
    clock.now += 59.9
    assert not limiter.hit(one_a_minute, "k")
    clock.now += 0.2
    assert limiter.hit(one_a_minute, "k")
    assert limiter.get_window_stats(one_a_minute, "k").remaining == 0


def test_expired_windows_are_swept_so_memory_stays_bounded(clock: Clock) -> None:
    storage = FixedWindowMemoryStorage()
    for i in range(SWEEP_EVERY - 1):
        storage.incr(f"caller-{i}", 1)
    assert storage.window_count() == SWEEP_EVERY - 1
    clock.now += 2
    storage.incr("one-more", 1)  # the SWEEP_EVERY-th increment sweeps the expired ones
    assert storage.window_count() == 1


def test_counting_starts_no_threads() -> None:
    """The reason this storage exists: limits' memory:// starts a Timer thread per few hits."""
    storage = FixedWindowMemoryStorage()
    started: list[threading.Thread] = []
    original_start = threading.Thread.start

    def spy(thread: threading.Thread) -> None:
        started.append(thread)
        original_start(thread)

    threading.Thread.start = spy  # type: ignore[method-assign]
    try:
        for i in range(200):
            storage.incr(f"k{i % 3}", 60)
    finally:
        threading.Thread.start = original_start  # type: ignore[method-assign]
    assert started == []


def test_the_app_counts_in_this_storage_by_default(app_config: dict) -> None:
    app = create_app(app_config)
    (limiter,) = app.extensions["limiter"]
    assert isinstance(limiter.storage, FixedWindowMemoryStorage)
