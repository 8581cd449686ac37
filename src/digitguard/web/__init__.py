"""The Flask adapter: ``create_app`` and its blueprints.

- ``ui``: the drawing page (static JS/CSS only, so a strict CSP holds).
- ``api``: ``POST /api/v1/predict`` and the OpenAPI 3.1 document.
- ``health``: ``/healthz`` (alive) and ``/readyz`` (a verified model is loaded).

The app is built around a :class:`~digitguard.inference.predictor.Predictor`,
which only exists for a model that passed :func:`load_verified`: an app
without a verified model is never created, so it never serves.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from digitguard.inference.predictor import DEFAULT_ABSTAIN_BELOW, Predictor
from digitguard.models.artifact import load_verified

EXTENSION = "digitguard"


def default_model_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "models" / "basic"


DEFAULTS: dict[str, Any] = {
    "MODEL_DIR": None,
    "TRUST_DIRS": [],
    "ABSTAIN_BELOW": DEFAULT_ABSTAIN_BELOW,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 4_000_000,
    "MAX_IMAGE_SIDE": 4096,
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults → ``DIGITGUARD_CONFIG`` file → ``DIGITGUARD_*`` env → ``test_config``.

    Raises a :class:`~digitguard.errors.ModelError` when the model does not verify.
    """
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    if os.environ.get("DIGITGUARD_CONFIG"):
        app.config.from_file(os.environ["DIGITGUARD_CONFIG"], load=_load_json)
    app.config.from_prefixed_env("DIGITGUARD")
    if test_config is not None:
        app.config.from_mapping(test_config)
    if not app.config.get("SECRET_KEY"):
        # Nothing here is signed with it yet; a per-process random key is never a shared default.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.extensions[EXTENSION] = _predictor(app)
    _register(app)
    return app


def _load_json(handle: Any) -> Any:
    import json

    return json.load(handle)


def _predictor(app: Flask) -> Predictor:
    model_dir = Path(app.config["MODEL_DIR"] or default_model_dir())
    trust = app.config["TRUST_DIRS"]
    trust_dirs = [Path(p) for p in (trust.split(os.pathsep) if isinstance(trust, str) else trust) if p]
    verified = load_verified(model_dir, trust_dirs)
    return Predictor(verified, abstain_below=float(app.config["ABSTAIN_BELOW"]))


def _register(app: Flask) -> None:
    from digitguard.web import api, errors, health, security, ui

    app.register_blueprint(ui.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(health.blueprint)
    errors.register(app)
    security.register(app)


def predictor_of(app: Flask) -> Predictor:
    return app.extensions[EXTENSION]
