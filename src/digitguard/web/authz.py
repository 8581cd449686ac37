"""The authorization matrix: for every endpoint, who may call it. Unknown endpoints are denied.

``anonymous`` means no credential; ``anonymous-if-enabled`` means anonymous only while the
``ALLOW_ANONYMOUS`` switch is on. CSRF: a state-changing request that relies on the session
cookie, and every sign-in, must carry the session's token (form field ``csrf_token`` or header
``X-CSRF-Token``).
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, current_app, g, request, session

from digitguard.security.keys import Role
from digitguard.web.errors import ApiError

ANONYMOUS = "anonymous"
ANONYMOUS_IF_ENABLED = "anonymous-if-enabled"
EVERYONE = frozenset({ANONYMOUS, Role.PREDICT, Role.REVIEWER, Role.ADMIN})
SIGNED_IN = frozenset({Role.PREDICT, Role.REVIEWER, Role.ADMIN})
REVIEWERS = frozenset({Role.REVIEWER, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})

RULES: dict[str, frozenset[str]] = {
    "ui.index": EVERYONE,
    "ui.static": EVERYONE,
    "health.healthz": EVERYONE,
    "health.readyz": EVERYONE,
    "api.openapi": EVERYONE,
    "api.predict": frozenset({ANONYMOUS_IF_ENABLED, Role.PREDICT, Role.REVIEWER, Role.ADMIN}),
    "api.keys_list": ADMINS,
    "api.keys_create": ADMINS,
    "api.keys_revoke": ADMINS,
    "api.model_reload": ADMINS,
    "auth.signin_form": EVERYONE,
    "auth.signin": EVERYONE,
    "auth.signout": SIGNED_IN,
    "admin.account": REVIEWERS,
    "admin.keys_page": ADMINS,
    "admin.revoke_form": ADMINS,
    "metrics.metrics": ADMINS,
    # Whoever may predict may flag an answer they received as wrong (web/review.py checks it was theirs).
    "review.flag": frozenset({ANONYMOUS_IF_ENABLED, Role.PREDICT, Role.REVIEWER, Role.ADMIN}),
    "review.queue_page": REVIEWERS,
    "review.item_page": REVIEWERS,
    "review.input_png": REVIEWERS,
    "review.decide_form": REVIEWERS,
    "review.items_list": REVIEWERS,
    "review.item_decide": REVIEWERS,
    # The threat-model report lists open gaps: staff only, though it shows no secret.
    "security.page": REVIEWERS,
}
CSRF_ALWAYS = frozenset({"auth.signin"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def allowed(endpoint: str | None, role: str, allow_anonymous: bool) -> bool:
    rule = RULES.get(endpoint or "")
    if rule is None:
        return False  # a route nobody wrote a rule for is closed
    if role == ANONYMOUS and allow_anonymous and ANONYMOUS_IF_ENABLED in rule:
        return True
    return role in rule


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def register(app: Flask) -> None:
    @app.before_request
    def authorize() -> None:
        if request.endpoint is None:
            return  # 404 / 405: let routing answer
        principal = g.principal
        if not allowed(request.endpoint, principal.label, current_app.config["ALLOW_ANONYMOUS"]):
            if principal.kind == ANONYMOUS:
                raise ApiError(401, "authentication_required", "this endpoint needs an API key or a sign-in")
            raise ApiError(403, "forbidden", f"role {principal.label!r} may not use this endpoint")
        if request.method not in SAFE_METHODS and (
            principal.via == "session" or request.endpoint in CSRF_ALWAYS
        ):
            _check_csrf()

    app.jinja_env.globals["csrf_token"] = csrf_token


def _check_csrf() -> None:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(sent, expected):
        raise ApiError(403, "csrf_failed", "missing or wrong CSRF token")
