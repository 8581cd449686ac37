"""Against model extraction in serving: response modes by role, and a PRADA watch on every caller.

**Response modes** (``RESPONSE_MODE``, overridden per caller by ``RESPONSE_MODE_BY_ROLE``, whose
keys are ``anonymous``, ``predict``, ``reviewer`` and ``admin``):

- ``full`` — the ten probabilities (default; the drawing page draws them);
- ``rounded`` — probabilities and confidence rounded to ``RESPONSE_ROUNDING`` decimals;
- ``top1`` — the digit and its confidence (rounded) only; ``probabilities`` is ``null``.

Outside ``full`` no Integrated Gradients explanation is returned: gradients are what an
extraction attack wants most.

**The extraction watch** (``EXTRACTION_DETECTOR`` ``on`` by default): every answered prediction is
observed by a :class:`~digitguard.security.extraction.PradaDetector` under the caller's trail
label (key id, or the hashed client address). When a caller's query distances stop looking
natural (Shapiro–Wilk ``W`` below ``EXTRACTION_DELTA``), the caller is audited
(``extraction.suspected``) and throttled: its predictions are refused with 429
``extraction_suspected`` for ``EXTRACTION_COOLDOWN_S``, after which watching starts afresh. The
refusal is kept in the rate limits' storage, so replicas sharing Redis share it; the distance
record itself is per process (each worker watches the share of the caller's queries it answers).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from flask import Flask, current_app, g

from digitguard.security.extraction import PradaDetector, PradaSettings, PradaVerdict
from digitguard.web import ConfigError, trail
from digitguard.web.errors import ApiError
from digitguard.web.limits import limit_store

RESPONSE_MODES = ("full", "rounded", "top1")
CALLER_KINDS = ("anonymous", "predict", "reviewer", "admin")
EXTENSION = "digitguard.extraction"
BAN_PREFIX = "digitguard/extraction-suspected/"
LOCAL_PAUSES = "digitguard.extraction.paused"


def install(app: Flask) -> None:
    """Check the response-mode settings and start the watch (when on)."""
    for mode in (app.config["RESPONSE_MODE"], *dict(app.config["RESPONSE_MODE_BY_ROLE"]).values()):
        if mode not in RESPONSE_MODES:
            raise ConfigError(f"response modes must be one of {RESPONSE_MODES}, not {mode!r}")
    unknown = set(dict(app.config["RESPONSE_MODE_BY_ROLE"])) - set(CALLER_KINDS)
    if unknown:
        raise ConfigError(f"RESPONSE_MODE_BY_ROLE keys must be among {CALLER_KINDS}, not {sorted(unknown)}")
    switch = str(app.config["EXTRACTION_DETECTOR"]).lower()
    if switch not in ("on", "off"):
        raise ConfigError(f"EXTRACTION_DETECTOR must be on or off, not {app.config['EXTRACTION_DETECTOR']!r}")
    if switch == "on":
        try:
            settings = PradaSettings(
                delta=float(app.config["EXTRACTION_DELTA"]),
                min_distances=int(app.config["EXTRACTION_MIN_DISTANCES"]),
            )
        except ValueError as exc:
            raise ConfigError(f"extraction detector: {exc}") from exc
        app.extensions[EXTENSION] = PradaDetector(settings)
        app.extensions[LOCAL_PAUSES] = {}


def response_mode() -> str:
    principal = g.get("principal")
    kind = principal.role.value if principal is not None and principal.role is not None else "anonymous"
    return str(
        dict(current_app.config["RESPONSE_MODE_BY_ROLE"]).get(kind, current_app.config["RESPONSE_MODE"])
    )


def shape(body: dict[str, Any], mode: str) -> dict[str, Any]:
    """The prediction body as ``mode`` allows it to leave."""
    if mode == "full":
        return body
    digits = int(current_app.config["RESPONSE_ROUNDING"])
    shaped = {**body, "confidence": round(body["confidence"], digits), "response_mode": mode}
    shaped["probabilities"] = None if mode == "top1" else [round(p, digits) for p in body["probabilities"]]
    return shaped


def _paused(caller: str) -> bool:
    if current_app.extensions["digitguard.limiter"].enabled:
        with limit_store() as storage:
            return int(storage.get(BAN_PREFIX + caller) or 0) > 0
    # Rate limiting switched off: no shared store, so this process remembers on its own.
    return current_app.extensions[LOCAL_PAUSES].get(caller, 0.0) > time.monotonic()


def _pause(caller: str, seconds: int) -> None:
    if current_app.extensions["digitguard.limiter"].enabled:
        with limit_store() as storage:
            storage.incr(BAN_PREFIX + caller, seconds)
    else:
        current_app.extensions[LOCAL_PAUSES][caller] = time.monotonic() + seconds


def refuse_if_suspected() -> None:
    """429 for a caller the watch has flagged, until its cool-down ends."""
    if EXTENSION not in current_app.extensions:
        return
    if _paused(trail.principal_label()):
        raise ApiError(
            429,
            "extraction_suspected",
            "this caller's queries look like a model-extraction attack; predictions are paused",
            retry_after_s=int(current_app.config["EXTRACTION_COOLDOWN_S"]),
        )


def observe(digit28: np.ndarray, predicted: int) -> PradaVerdict | None:
    """Watch one answered query; audit and throttle its caller when the alarm goes off."""
    detector: PradaDetector | None = current_app.extensions.get(EXTENSION)
    if detector is None:
        return None
    caller = trail.principal_label()
    verdict = detector.observe(caller, digit28, predicted)
    if verdict.alarm:
        cooldown = int(current_app.config["EXTRACTION_COOLDOWN_S"])
        _pause(caller, cooldown)
        trail.record(
            "extraction.suspected",
            {
                "caller": caller,
                "queries": verdict.queries,
                "distances": verdict.distances,
                "shapiro_wilk_w": verdict.statistic,
                "delta": detector.settings.delta,
                "cooldown_s": cooldown,
            },
        )
        current_app.extensions["digitguard.metrics"].rate_limited("extraction")
        detector.forget(caller)
    return verdict
