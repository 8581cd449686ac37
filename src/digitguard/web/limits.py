"""Rate limits and quotas (Flask-Limiter), bounded concurrency, and an inference time budget.

Limits on ``POST /api/v1/predict``:

- anonymous callers: ``ANONYMOUS_LIMIT`` per client address (strict; default 30/minute);
- API keys: ``KEY_LIMIT`` per key (default 600/minute) and ``KEY_QUOTA`` per key (the seeds'
  query limiting against model extraction; default 10000/day);
- every caller: ``IP_LIMIT`` per client address (default 1200/minute).

``SIGNIN_LIMIT`` (default 10/minute per address) guards the sign-in form on top of the growing
lock-outs. Storage is ``RATELIMIT_STORAGE_URI``: ``fixed-memory://`` (one process, see
:mod:`digitguard.web.limit_storage`; ``limits``' own ``memory://`` works too, slower) or
``redis://host:port`` (shared by every worker and replica).

Predictions and flags are the hot path: their limits are checked by :func:`limited` in one pass
through Flask-Limiter's own strategy and storage (the same counters, prefix and fixed windows),
with each limit string parsed once. Flask-Limiter's per-request machinery (two passes, limit
resolution, exemption scopes) cost about 0.5 ms a prediction — a third of what every other
control together adds (``bench/ablate_predict.py``). A storage that cannot be reached refuses
the request with 503 ``limits_unavailable``: no limit, no answer.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.errors import StorageError

from digitguard.web import limit_storage  # noqa: F401 (registers the fixed-memory:// scheme)
from digitguard.web.errors import ApiError, RateLimitedError
from digitguard.web.identity import client_address

LIMIT_DEFAULTS = {
    "RATELIMIT_STORAGE_URI": "fixed-memory://",
    "RATELIMIT_STRATEGY": "fixed-window",
    # Retry-After is set by our 429 handler; Flask-Limiter's own headers would also stamp a
    # Retry-After on responses that are not rate-limit refusals (e.g. sign-in lock-outs).
    "RATELIMIT_HEADERS_ENABLED": False,
    "RATELIMIT_KEY_PREFIX": "digitguard",
    "ANONYMOUS_LIMIT": "30/minute",
    "KEY_LIMIT": "600/minute",
    "KEY_QUOTA": "10000/day",
    "IP_LIMIT": "1200/minute",
    "SIGNIN_LIMIT": "10/minute",
    "MAX_CONCURRENT_INFERENCES": 4,
    "QUEUE_WAIT_S": 0.5,
    "INFERENCE_BUDGET_S": 2.0,
    "BODY_READ_TIMEOUT_S": 5.0,
}


def _principal_key() -> str:
    principal = g.principal
    return f"key:{principal.key_id}" if principal.key_id else f"ip:{client_address()}"


def _ip_key() -> str:
    return f"ip:{client_address()}"


def _caller_limits() -> str:
    config = current_app.config
    if g.principal.key_id:
        return f"{config['KEY_LIMIT']};{config['KEY_QUOTA']}"
    return str(config["ANONYMOUS_LIMIT"])


def bound_body_reads(app: Flask) -> None:
    """Give each socket read of a request body a deadline (slow-loris bodies get 408, not a worker)."""

    @app.before_request
    def set_read_timeout() -> None:
        sock = request.environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(float(current_app.config["BODY_READ_TIMEOUT_S"]))


def install(app: Flask) -> Limiter:
    """Create this app's limiter and attach the limits to its views (after blueprints exist)."""
    limiter = Limiter(key_func=_ip_key, app=app)
    _skip_flask_limiter_on_hot_path(app, limiter)
    views: dict[str, Any] = app.view_functions
    views["api.predict"] = limited(views["api.predict"])
    views["auth.signin"] = limiter.limit(lambda: current_app.config["SIGNIN_LIMIT"], key_func=_ip_key)(
        views["auth.signin"]
    )
    app.extensions["digitguard.inference_slots"] = threading.BoundedSemaphore(
        int(app.config["MAX_CONCURRENT_INFERENCES"])
    )
    return limiter


@functools.lru_cache(maxsize=64)
def _parsed(limits: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limits))


def _request_limits() -> list[tuple[RateLimitItem, str, str]]:
    """(limit, scope, key) for this request: the caller's limits and the per-address limit.

    Each endpoint counts apart (a flag does not spend a prediction), as Flask-Limiter's
    per-route limits did.
    """
    caller, address, endpoint = _principal_key(), _ip_key(), request.endpoint
    counted = [(item, f"{endpoint}:caller", caller) for item in _parsed(_caller_limits())]
    counted += [
        (item, f"{endpoint}:address", address) for item in _parsed(str(current_app.config["IP_LIMIT"]))
    ]
    return sorted(counted, key=lambda entry: entry[0])  # as Flask-Limiter orders them


def check_request_limits() -> None:
    """Count this request against each of its limits; the first one exceeded refuses it (429)."""
    limiter: Limiter = current_app.extensions["digitguard.limiter"]
    if not limiter.enabled:
        return
    strategy, prefix = limiter.limiter, str(current_app.config["RATELIMIT_KEY_PREFIX"])
    with limit_store():
        for item, scope, key in _request_limits():
            if not strategy.hit(item, prefix, key, scope):
                reset_at = strategy.get_window_stats(item, prefix, key, scope).reset_time
                raise RateLimitedError(item, max(1, math.ceil(reset_at - time.time())))


@contextmanager
def limit_store() -> Iterator[Any]:
    """The rate limits' storage; a failure to reach it refuses the request (503), never a 500."""
    limiter: Limiter = current_app.extensions["digitguard.limiter"]
    unavailable: tuple[type[BaseException], ...] = (StorageError, *_storage_errors(limiter))
    try:
        yield limiter.storage
    except unavailable as exc:
        raise ApiError(
            503, "limits_unavailable", "the rate-limit store is unavailable; retry shortly", retry_after_s=1
        ) from exc


def _storage_errors(limiter: Limiter) -> tuple[type[Exception], ...]:
    errors = limiter.storage.base_exceptions
    return errors if isinstance(errors, tuple) else (errors,)


def _skip_flask_limiter_on_hot_path(app: Flask, limiter: Limiter) -> None:
    """Flask-Limiter holds no limit for the views :func:`limited` wrapped (they count their own),
    so its per-request pass is skipped there instead of resolving nothing (≈ 0.09 ms)."""
    if not limiter.enabled:
        return  # RATELIMIT_ENABLED off: no hook was installed, and check_request_limits counts nothing
    hooks = app.before_request_funcs.setdefault(None, [])
    for index, hook in enumerate(hooks):
        if getattr(hook, "__self__", None) is limiter:

            def unless_hot_path(hook: Callable[[], Any] = hook) -> None:
                view = app.view_functions.get(request.endpoint or "")
                if not getattr(view, COUNTS_OWN_LIMITS, False):
                    hook()

            hooks[index] = unless_hot_path
            return
    raise RuntimeError("Flask-Limiter's before-request hook was not found; its API changed")


COUNTS_OWN_LIMITS = "_digitguard_counts_own_limits"


def limited(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a view so that :func:`check_request_limits` runs before it (after authorization)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_request_limits()
        return view(*args, **kwargs)

    setattr(checked, COUNTS_OWN_LIMITS, True)
    return checked


@contextmanager
def inference_slot() -> Iterator[None]:
    """Hold one of the process's inference slots; 503 + Retry-After instead of queueing forever."""
    slots: threading.BoundedSemaphore = current_app.extensions["digitguard.inference_slots"]
    if not slots.acquire(timeout=float(current_app.config["QUEUE_WAIT_S"])):
        raise ApiError(
            503, "overloaded", "the server is at its inference capacity; retry shortly", retry_after_s=1
        )
    try:
        yield
    finally:
        slots.release()


class Budget:
    """The per-request inference time budget, checked between the stages of a prediction."""

    def __init__(self, seconds: float) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + seconds
        self.seconds = seconds

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def check(self, stage: str) -> None:
        if time.perf_counter() > self.deadline:
            raise ApiError(
                503,
                "inference_timeout",
                f"the {self.seconds:g} s inference budget ran out during {stage}",
                retry_after_s=1,
            )
