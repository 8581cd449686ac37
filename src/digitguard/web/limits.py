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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g, request
from flask_limiter import Limiter

from digitguard.web import limit_storage  # noqa: F401 (registers the fixed-memory:// scheme)
from digitguard.web.errors import ApiError
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
    # The per-address limit is a "default" limit kept to predictions, so that Flask-Limiter checks
    # it in the same pass as the caller's limits (one evaluation per request instead of two).
    limiter = Limiter(
        key_func=_ip_key,
        app=app,
        default_limits=[lambda: current_app.config["IP_LIMIT"]],
        default_limits_exempt_when=lambda: request.endpoint != "api.predict",
    )
    views: dict[str, Any] = app.view_functions
    views["api.predict"] = limiter.limit(
        _caller_limits, key_func=_principal_key, scope="caller", override_defaults=False
    )(views["api.predict"])
    views["auth.signin"] = limiter.limit(lambda: current_app.config["SIGNIN_LIMIT"], key_func=_ip_key)(
        views["auth.signin"]
    )
    app.extensions["digitguard.inference_slots"] = threading.BoundedSemaphore(
        int(app.config["MAX_CONCURRENT_INFERENCES"])
    )
    return limiter


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
