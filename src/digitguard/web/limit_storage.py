"""An in-process fixed-window counter store for Flask-Limiter: ``fixed-memory://``.

``limits``' own ``memory://`` storage restarts a ``threading.Timer`` (a new OS thread) after
every increment that finds the previous one finished, so that a background pass can drop
expired windows. Under a steady request stream that is one thread start every few requests,
and in a sync gunicorn worker each start costs the request that triggers it a GIL hand-off:
``bench/profile_predict.py`` measured about a third of a millisecond per prediction on the
2-core development machine.

This store keeps the same fixed-window semantics without a thread: a window that has expired
is dropped when it is next read, and every ``SWEEP_EVERY`` increments one pass drops every
expired window, so memory stays bounded by the keys active in the longest window. It supports
the ``fixed-window`` strategy only (Flask-Limiter refuses to start with another strategy and
this storage). Like ``memory://``, it counts per process: each gunicorn worker has its own
counters. Use ``redis://`` for exact limits across workers and replicas.
"""

from __future__ import annotations

import threading
import time

from limits.storage import Storage

SWEEP_EVERY = 1024


class FixedWindowMemoryStorage(Storage):
    STORAGE_SCHEME = ["fixed-memory"]  # noqa: RUF012 (limits registers schemes from this list)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}  # key → (count, expires at)
        self._increments = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            count, expires_at = self._windows.get(key, (0, 0.0))
            if expires_at <= now:
                count, expires_at = 0, now + expiry
            count += amount
            self._windows[key] = (count, expires_at)
            self._increments += 1
            if self._increments % SWEEP_EVERY == 0:
                self._sweep(now)
            return count

    def get(self, key: str) -> int:
        count, expires_at = self._windows.get(key, (0, 0.0))
        return count if expires_at > time.time() else 0

    def get_expiry(self, key: str) -> float:
        _count, expires_at = self._windows.get(key, (0, 0.0))
        return expires_at if expires_at > time.time() else time.time()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._windows)
            self._windows.clear()
            return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def window_count(self) -> int:
        """How many windows are held (live or not yet swept); for tests and diagnostics."""
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        expired = [key for key, (_count, expires_at) in self._windows.items() if expires_at <= now]
        for key in expired:
            del self._windows[key]
