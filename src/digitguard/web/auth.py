"""Browser sign-in with an API key: a session cookie, CSRF-protected, with growing lock-outs."""

from __future__ import annotations

import contextlib

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from digitguard.security.keys import InvalidKeyError, parse_token
from digitguard.security.throttle import LockedOutError, SigninThrottle
from digitguard.web import trail
from digitguard.web.errors import ApiError
from digitguard.web.identity import client_address, key_store

blueprint = Blueprint("auth", __name__, template_folder="templates")


def throttle() -> SigninThrottle:
    return current_app.extensions["digitguard.throttle"]


@blueprint.get("/signin")
def signin_form():
    return render_template("signin.html", error=None)


@blueprint.post("/signin")
def signin():
    token = request.form.get("api_key", "").strip()
    subjects = [f"ip:{client_address()}"]
    with contextlib.suppress(InvalidKeyError):  # a malformed key still counts against the address
        subjects.append(f"key:{parse_token(token)[0]}")
    try:
        throttle().check(subjects)
    except LockedOutError as exc:
        raise ApiError(429, "signin_locked", str(exc), retry_after_s=exc.retry_after_s) from exc
    try:
        key = key_store().authenticate(token)
    except InvalidKeyError as exc:
        throttle().record_failure(subjects)
        trail.record("signin.failed", {"subjects": subjects, "reason": str(exc)}, required=False)
        return render_template("signin.html", error="That key is not valid."), 401
    throttle().record_success(subjects)
    trail.record("signin.succeeded", {"key_id": key.key_id, "role": key.role.value})
    session.clear()  # a fresh session (and CSRF token) at every sign-in: no fixation
    session["key_id"] = key.key_id
    session.permanent = True
    target = "admin.keys_page" if key.role == "admin" else "admin.account"
    return redirect(url_for(target) if key.role in ("admin", "reviewer") else url_for("ui.index"))


@blueprint.post("/signout")
def signout():
    trail.record("signout", {}, required=False)
    session.clear()
    return redirect(url_for("ui.index"))
