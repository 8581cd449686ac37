"""Model lifecycle: verified reloads, and noticing when the served model's files change on disk.

An admin reload (``POST /api/v1/model/reload``, or ``digitguard model reload``) verifies the new
model in the worker that receives it; only a model that passes ``load_verified`` is swapped in,
otherwise the old one keeps serving and the refusal is audited. The accepted model becomes the
*target* in the database, and every other worker (and replica) swaps to it at its next check.
Every ``MODEL_CHECK_INTERVAL_S`` a worker also re-hashes the served model's files: if they
changed or vanished, ``/readyz`` turns red and the event is audited — the seed's "model files
deleted or renamed while the system is uninformed".
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app, jsonify, request

from digitguard.db import UNAVAILABLE
from digitguard.errors import ModelError
from digitguard.inference.predictor import Predictor
from digitguard.models.artifact import ARTIFACT_FILES, ENCRYPTED_ARTIFACT_FILES, load_verified
from digitguard.security.store import model_target, now
from digitguard.web import EXTENSION, ConfigError, detectors_for, path_list, trail
from digitguard.web.errors import ApiError


def file_hashes(model_dir: Path) -> dict[str, str | None]:
    hashes: dict[str, str | None] = {}
    for name in sorted(ARTIFACT_FILES | ENCRYPTED_ARTIFACT_FILES):
        try:
            hashes[name] = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
        except OSError:
            hashes[name] = None
    return hashes


@dataclass
class ModelWatch:
    """Per-process state: what was loaded, whether its files are still intact, when we last looked."""

    loaded_hashes: dict[str, str | None]
    files_intact: bool = True
    last_check: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def install(app: Flask) -> None:
    app.extensions["digitguard.watch"] = ModelWatch(file_hashes(app.extensions[EXTENSION].verified.path))

    @app.before_request
    def look_at_the_model() -> None:
        watch: ModelWatch = current_app.extensions["digitguard.watch"]
        if time.monotonic() - watch.last_check < float(current_app.config["MODEL_CHECK_INTERVAL_S"]):
            return
        if not watch.lock.acquire(blocking=False):
            return  # another thread of this worker is already looking
        try:
            watch.last_check = time.monotonic()
            _follow_target(current_app)
            _check_files(current_app, watch)
        finally:
            watch.lock.release()


def _check_files(app: Flask, watch: ModelWatch) -> None:
    intact = file_hashes(app.extensions[EXTENSION].verified.path) == watch.loaded_hashes
    if intact != watch.files_intact:
        watch.files_intact = intact
        kind = "model.files_restored" if intact else "model.files_changed"
        trail.record(kind, {"path": str(app.extensions[EXTENSION].verified.path)}, required=False)


def _follow_target(app: Flask) -> None:
    try:
        with app.extensions["digitguard.engine"].connect() as connection:
            target = connection.execute(sa.select(model_target).where(model_target.c.id == 1)).first()
    except UNAVAILABLE as exc:
        # Without the database no prediction can be recorded, so none is answered, and the
        # served model is still a verified one: look again at the next check rather than fail
        # whichever request (a /healthz, say) happened to trigger this one.
        app.logger.warning("model target not read (database unavailable): %s", exc)
        return
    current = app.extensions[EXTENSION]
    if target is None or target.weights_sha256 == current.model_sha256:
        return
    try:
        swap(app, Path(target.model_dir))
    except ModelError as exc:
        trail.record("model.refused", {"path": target.model_dir, "reason": str(exc)}, required=False)


def swap(app: Flask, model_dir: Path) -> Predictor:
    """Verify ``model_dir`` and serve it; raises :class:`ModelError` and keeps the old model otherwise."""
    verified = load_verified(model_dir, path_list(app.config["TRUST_DIRS"]))
    old: Predictor = app.extensions[EXTENSION]
    try:
        detectors = detectors_for(verified, app.config)
    except ConfigError as exc:  # e.g. ADVERSARIAL_DETECTOR=on and the new model has no calibration
        raise ModelError(f"{model_dir}: {exc}") from exc
    predictor = Predictor(
        verified,
        abstain_below=old.abstain_below,
        detector=detectors.adversarial,
        members=old.members,
        trigger_detector=detectors.trigger,
        # The gate (like ensemble members) was verified at start and is kept as loaded: a reload
        # replaces the primary model only.
        gate=old.gate,
    )
    app.extensions[EXTENSION] = predictor
    watch: ModelWatch = app.extensions["digitguard.watch"]
    watch.loaded_hashes, watch.files_intact = file_hashes(model_dir), True
    trail.record(
        "model.reloaded",
        {"from": old.model_sha256, "to": predictor.model_sha256, "path": str(model_dir)},
        required=False,
    )
    return predictor


def reload_model():
    """Admin API: verify the given (or current) model directory and make it the served model everywhere."""
    payload = request.get_json(silent=True) or {}
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", 'send {"model_dir": PATH} or an empty object')
    current: Predictor = current_app.extensions[EXTENSION]
    model_dir = Path(payload.get("model_dir") or current.verified.path)
    try:
        predictor = swap(current_app._get_current_object(), model_dir)  # type: ignore[attr-defined]
    except ModelError as exc:
        trail.record("model.refused", {"path": str(model_dir), "reason": str(exc)})
        raise ApiError(422, "model_refused", f"the old model keeps serving: {exc}") from exc
    with current_app.extensions["digitguard.engine"].begin() as connection:
        values = {"model_dir": str(model_dir), "weights_sha256": predictor.model_sha256, "set_at": now()}
        if (
            connection.execute(
                sa.update(model_target).where(model_target.c.id == 1).values(**values)
            ).rowcount
            == 0
        ):
            connection.execute(sa.insert(model_target).values(id=1, **values))
    return jsonify(
        model_sha256=predictor.model_sha256, model=predictor.verified.manifest.name, path=str(model_dir)
    )


def files_intact(app: Flask) -> bool:
    return app.extensions["digitguard.watch"].files_intact
