"""The drawing page."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from digitguard.web import predictor_of

blueprint = Blueprint(
    "ui", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)


@blueprint.get("/")
def index():
    predictor = predictor_of(current_app)
    manifest = predictor.verified.manifest
    return render_template(
        "index.html",
        model_name=manifest.name,
        model_sha256=predictor.model_sha256,
        gate_sha256=predictor.gate.weights_sha256 if predictor.gate is not None else None,
        test_accuracy=manifest.metrics.get("test_accuracy"),
        privacy=manifest.training.get("privacy"),
        abstain_below=predictor.abstain_below,
    )
