"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from digitguard.web import EXTENSION

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    return jsonify(status="alive")


@blueprint.get("/readyz")
def readyz():
    predictor = current_app.extensions.get(EXTENSION)
    if predictor is None:  # cannot happen through create_app; kept so readiness never lies
        return jsonify(status="not_ready", error="no_verified_model"), 503
    from digitguard.web.lifecycle import files_intact

    if not files_intact(current_app):
        return jsonify(
            status="not_ready", error="model_files_changed", model_sha256=predictor.model_sha256
        ), 503
    manifest = predictor.verified.manifest
    return jsonify(
        status="ready",
        model_sha256=predictor.model_sha256,
        model=manifest.name,
        architecture=manifest.architecture,
        signer_key_id=predictor.verified.signer_key_id,
        gate_sha256=predictor.gate.weights_sha256 if predictor.gate is not None else None,
    )
