"""The Flask adapter: ``create_app`` and its blueprints.

- ``ui``: the drawing page (static JS/CSS only, so a strict CSP holds).
- ``api``: ``POST /api/v1/predict`` and the OpenAPI 3.1 document.
- ``health``: ``/healthz`` (alive) and ``/readyz`` (a verified model is loaded, and its gate).
- ``review``: the human review queue (flags, reviewer pages and API); see ``web/review.py``.

The app is built around a :class:`~digitguard.inference.predictor.Predictor`,
which only exists for a model that passed :func:`load_verified`: an app
without a verified model is never created, so it never serves. An optional gate
model (``GATE_DIR``) passes the same loader and trust store, and must have 11 outputs.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, g

from digitguard.defences.rejection import TriggerCalibrationError
from digitguard.defences.squeeze import DETECTOR_METRIC, Calibration, DetectorCalibrationError, calibration_of
from digitguard.defences.trigger import TRIGGER_METRIC, TriggerCalibration, trigger_calibration_of
from digitguard.errors import DigitguardError, ModelError
from digitguard.inference.predictor import DEFAULT_ABSTAIN_BELOW, GateModelError, Predictor
from digitguard.models.artifact import VerifiedModel, load_verified
from digitguard.paths import default_database_url, instance_dir
from digitguard.review.store import ReviewStore
from digitguard.security.store import KeyStore, connect
from digitguard.security.throttle import SigninThrottle

EXTENSION = "digitguard"
WEAK_SECRETS = frozenset({"dev", "development", "secret", "changeme", "change-me", "default", "test"})
MIN_SECRET_LENGTH = 32
log = logging.getLogger(__name__)
_C = TypeVar("_C")


class ConfigError(DigitguardError):
    """The configuration breaks a rule (e.g. a weak or default SECRET_KEY). Exit status 2."""

    exit_code = 2


def default_model_dir() -> Path:
    """The served default (issue 16): TRADES at ε = 0.3, trained on drawing styles too."""
    return Path(__file__).resolve().parents[3] / "models" / "robust-drawing"


def default_gate_dir() -> Path:
    """The gate served with the default model: it must agree, and it knows non-digits."""
    return Path(__file__).resolve().parents[3] / "models" / "digit-gate"


def gate_dir_of(config: Mapping[str, object]) -> Path | None:
    """The configured gate; without one, the default model comes with the default gate and an
    explicitly chosen model with none. ``GATE_DIR="off"`` serves no gate at all."""
    configured = config.get("GATE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(str(configured))
    return default_gate_dir() if not config.get("MODEL_DIR") else None


DEFAULTS: dict[str, Any] = {
    "MODEL_DIR": None,
    "TRUST_DIRS": [],
    "ABSTAIN_BELOW": DEFAULT_ABSTAIN_BELOW,
    "ADVERSARIAL_DETECTOR": "auto",
    # The backdoor-trigger detector (patch occlusion or STRIP; an abstention signal): auto, on or off.
    "TRIGGER_DETECTOR": "auto",
    # Optional deep ensemble: further signed model directories whose probabilities are averaged
    # with MODEL_DIR's (each verified like it); empty: the model alone.
    "ENSEMBLE_MODEL_DIRS": [],
    # Optional gate: a signed model with 11 outputs (ten digits, then "not a digit") that must read
    # the same digit as the served model for an answer, and can say "not a digit". None: the default
    # gate with the default model, none with a chosen MODEL_DIR; "off": never a gate.
    "GATE_DIR": None,
    # Against model extraction (web/extraction.py): what a prediction reveals, by caller, and the
    # PRADA watch that throttles callers whose queries look synthetic.
    "RESPONSE_MODE": "full",  # full, rounded or top1
    "RESPONSE_MODE_BY_ROLE": {},  # e.g. {"predict": "top1", "anonymous": "rounded"}
    "RESPONSE_ROUNDING": 2,
    "EXTRACTION_DETECTOR": "on",
    "EXTRACTION_DELTA": 0.9,
    "EXTRACTION_MIN_DISTANCES": 100,
    "EXTRACTION_COOLDOWN_S": 600,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 4_000_000,
    "MAX_IMAGE_SIDE": 4096,
    "DATABASE_URL": None,
    "ALLOW_ANONYMOUS": True,
    "TLS": False,
    "SECRET_KEY": None,
    "SECRET_KEY_FILE": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Strict",
    "PERMANENT_SESSION_LIFETIME": 8 * 3600,
    "SIGNIN_FREE_ATTEMPTS": 3,
    "SIGNIN_BASE_DELAY_S": 1.0,
    "SIGNIN_MAX_DELAY_S": 900.0,
    "LOG_REQUESTS": False,
    "AUDIT_SIGNING_KEY_FILE": None,
    "AUDIT_CHECKPOINT_EVERY": 100,
    # SQLite trail: FULL fsyncs every record before its answer (survives power loss); NORMAL
    # survives any process crash but may lose the last records if the machine itself goes down.
    "AUDIT_SQLITE_SYNCHRONOUS": "FULL",
    "AUDIT_STORE_INPUTS": False,
    "AUDIT_RAW_ADDRESSES": False,
    "MODEL_CHECK_INTERVAL_S": 10.0,
    # /security: where the threat model's evidence lives (default: the source checkout) and the
    # JUnit report of the last test run (default: reports/junit.xml under that root).
    "THREATS_EVIDENCE_ROOT": None,
    "THREATS_JUNIT": None,
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults → ``DIGITGUARD_CONFIG`` file → ``DIGITGUARD_*`` env → ``test_config``.

    Raises a :class:`~digitguard.errors.ModelError` when the model does not verify and a
    :class:`ConfigError` for a weak or default secret key outside tests.
    """
    from digitguard.web.limits import LIMIT_DEFAULTS

    app = Flask(__name__, instance_path=str(instance_dir().resolve()), static_folder=None)
    app.config.from_mapping({**DEFAULTS, **LIMIT_DEFAULTS})
    if os.environ.get("DIGITGUARD_CONFIG"):
        app.config.from_file(os.environ["DIGITGUARD_CONFIG"], load=_load_json)
    app.config.from_prefixed_env("DIGITGUARD")
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.config["SECRET_KEY"] = _secret_key(app)
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config["TLS"])
    predictor = _predictor(app)
    app.extensions[EXTENSION] = predictor
    database_url = app.config["DATABASE_URL"] or default_database_url()
    from digitguard.web import lifecycle

    engine = connect(database_url)
    app.extensions["digitguard.engine"] = engine
    app.extensions["digitguard.keys"] = KeyStore(engine)
    app.extensions["digitguard.throttle"] = SigninThrottle(
        engine,
        free_attempts=int(app.config["SIGNIN_FREE_ATTEMPTS"]),
        base_delay_s=float(app.config["SIGNIN_BASE_DELAY_S"]),
        max_delay_s=float(app.config["SIGNIN_MAX_DELAY_S"]),
    )
    _register(app, predictor)
    from digitguard.web import trail

    lifecycle.install(app)
    trail.install(app, database_url).append("model.loaded", "system", None, _loaded_details(predictor))
    return app


def _loaded_details(predictor: Predictor) -> dict[str, object]:
    details: dict[str, object] = {
        "model_sha256": predictor.model_sha256,
        "model": predictor.verified.manifest.name,
        "path": str(predictor.verified.path),
        "signer_key_id": predictor.verified.signer_key_id,
    }
    if predictor.gate is not None:
        details["gate"] = {
            "sha256": predictor.gate.weights_sha256,
            "model": predictor.gate.manifest.name,
            "path": str(predictor.gate.path),
            "signer_key_id": predictor.gate.signer_key_id,
        }
    return details


def _load_json(handle: Any) -> Any:
    import json

    return json.load(handle)


def _secret_key(app: Flask) -> str:
    secret = app.config.get("SECRET_KEY")
    if not secret and app.config.get("TESTING"):
        return secrets.token_hex(32)
    if not secret:
        secret = _secret_from_file(
            Path(app.config["SECRET_KEY_FILE"] or Path(app.instance_path) / "secret_key")
        )
    if str(secret).strip().lower() in WEAK_SECRETS or len(str(secret)) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"SECRET_KEY is a default or shorter than {MIN_SECRET_LENGTH} characters; set "
            "DIGITGUARD_SECRET_KEY to a long random value (or leave it unset for a generated secret_key file)"
        )
    return str(secret)


def _secret_from_file(path: Path) -> str:
    """Read the instance's secret key, creating it (mode 0600) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()  # another process created it first
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip()


def _predictor(app: Flask) -> Predictor:
    model_dir = Path(app.config["MODEL_DIR"] or default_model_dir())
    trust_dirs = path_list(app.config["TRUST_DIRS"])
    verified = load_verified(model_dir, trust_dirs)
    member_dirs = path_list(app.config["ENSEMBLE_MODEL_DIRS"])
    detectors = detectors_for(verified, app.config)
    gate_dir = gate_dir_of(app.config)
    gate = load_verified(gate_dir, trust_dirs) if gate_dir else None
    try:
        return Predictor(
            verified,
            abstain_below=float(app.config["ABSTAIN_BELOW"]),
            detector=detectors.adversarial,
            members=[load_verified(member, trust_dirs) for member in member_dirs],
            trigger_detector=detectors.trigger,
            gate=gate,
        )
    except GateModelError as exc:
        raise ModelError(f"{gate_dir}: refused as a gate: {exc}") from exc


def path_list(value: str | list[str]) -> list[Path]:
    """A configured list of paths: a list, or one string of paths joined by ``os.pathsep``."""
    return [Path(p) for p in (value.split(os.pathsep) if isinstance(value, str) else value) if p]


DETECTOR_SWITCH = ("auto", "on", "off")


@dataclass(frozen=True)
class Detectors:
    """The calibrations a served model's detectors use (``None``: that detector is off)."""

    adversarial: Calibration | None
    trigger: TriggerCalibration | None


def detectors_for(verified: VerifiedModel, config: Mapping[str, object]) -> Detectors:
    """The served model's detectors under ``ADVERSARIAL_DETECTOR`` (feature squeezing) and
    ``TRIGGER_DETECTOR`` (patch occlusion or STRIP): ``auto`` (default) uses a detector when the
    model carries its calibration, ``on`` refuses a model without one, ``off`` serves none."""
    return Detectors(
        _calibration(verified, "ADVERSARIAL_DETECTOR", config, DETECTOR_METRIC, calibration_of),
        _calibration(verified, "TRIGGER_DETECTOR", config, TRIGGER_METRIC, trigger_calibration_of),
    )


def _calibration(
    verified: VerifiedModel,
    setting: str,
    config: Mapping[str, object],
    metric: str,
    parse: Callable[[dict[str, object]], _C],
) -> _C | None:
    switch = config[setting]
    mode = str(switch).lower()
    if mode not in DETECTOR_SWITCH:
        raise ConfigError(f"{setting} must be one of {DETECTOR_SWITCH}, not {switch!r}")
    if mode == "off" or (mode == "auto" and metric not in verified.manifest.metrics):
        return None
    try:
        return parse(verified.manifest.metrics)
    except (DetectorCalibrationError, TriggerCalibrationError) as exc:
        raise ConfigError(f"{setting}={mode}: {exc}") from exc


def _register(app: Flask, predictor: Predictor) -> None:
    from digitguard.web import (
        admin,
        api,
        auth,
        authz,
        errors,
        extraction,
        health,
        identity,
        limits,
        logs,
        metrics,
        review,
        security,
        threats,
        ui,
    )

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = uuid.uuid4().hex

    limits.bound_body_reads(app)
    metrics.register(app, metrics.Metrics(predictor.model_sha256, predictor.verified.manifest.name))
    identity.register(app)
    authz.register(app)
    for blueprint in (
        ui.blueprint,
        api.blueprint,
        health.blueprint,
        auth.blueprint,
        admin.blueprint,
        metrics.blueprint,
        review.blueprint,
        threats.blueprint,
    ):
        app.register_blueprint(blueprint)
    app.extensions["digitguard.limiter"] = limits.install(app)
    extraction.install(app)
    review.install(app, ReviewStore(app.extensions["digitguard.engine"]))
    errors.register(app)
    security.register(app)
    logs.register(app)


def predictor_of(app: Flask) -> Predictor:
    return app.extensions[EXTENSION]
