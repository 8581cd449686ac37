"""``GET /security``: the threat-model report for this running app and the model it serves.

A thin adapter over :mod:`digitguard.threatmodel`: the evidence is judged against this app's
configuration and its served model's SHA-256, so switching a control off in the configuration
shows here at once. Reviewers and admins only (web/authz.py): the open gaps are a map for an
attacker, although the page shows no secret (configuration values are redacted by the core).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, make_response, render_template
from markupsafe import Markup

from digitguard.threatmodel.report import CHECKOUT, evaluate, to_html_fragment
from digitguard.web import predictor_of

blueprint = Blueprint("security", __name__, template_folder="templates")


@blueprint.get("/security")
def page():
    predictor = predictor_of(current_app)
    config = current_app.config
    root = Path(config["THREATS_EVIDENCE_ROOT"] or CHECKOUT)
    report = evaluate(
        config=config,
        model_sha256=predictor.model_sha256,
        model_name=predictor.verified.manifest.name,
        config_source="this running app",
        root=root,
        junit_path=Path(config["THREATS_JUNIT"]) if config["THREATS_JUNIT"] else None,
    )
    # to_html_fragment escapes every value it renders; the markup itself is ours.
    body = Markup(to_html_fragment(report))  # noqa: S704  # nosec B704
    response = make_response(render_template("security.html", report=body))
    response.headers["Cache-Control"] = "no-store"
    return response
