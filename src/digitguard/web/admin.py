"""Pages for signed-in reviewers and admins, and the admin key API."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, redirect, render_template, request, url_for

from digitguard.security.keys import ApiKey, Role
from digitguard.security.store import StoreError
from digitguard.web import trail
from digitguard.web.errors import ApiError
from digitguard.web.identity import key_store

blueprint = Blueprint("admin", __name__, template_folder="templates")


def key_json(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role.value,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@blueprint.get("/account")
def account():
    return render_template("account.html", principal=g.principal)


@blueprint.get("/admin/keys")
def keys_page():
    return render_template("keys.html", keys=key_store().list(), principal=g.principal)


@blueprint.post("/admin/keys/<key_id>/revoke")
def revoke_form(key_id: str):
    _revoke(key_id)
    return redirect(url_for("admin.keys_page"))


def keys_list():
    return jsonify(keys=[key_json(key) for key in key_store().list()])


def keys_create():
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", 'send {"name": NAME, "role": "predict"|"reviewer"|"admin"}')
    try:
        role = Role(payload.get("role"))
    except ValueError as exc:
        raise ApiError(422, "invalid_role", "role must be one of predict, reviewer, admin") from exc
    name = payload.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 200:
        raise ApiError(422, "invalid_name", "name must be a non-empty string of at most 200 characters")
    created = key_store().create(name, role)
    trail.record("key.created", {"key_id": created.key.key_id, "name": created.key.name, "role": role.value})
    return jsonify(key=key_json(created.key), token=created.token), 201


def keys_revoke(key_id: str):
    return jsonify(key=key_json(_revoke(key_id)))


def _revoke(key_id: str) -> ApiKey:
    try:
        key = key_store().revoke(key_id)
    except StoreError as exc:
        raise ApiError(404, "unknown_key", str(exc)) from exc
    trail.record("key.revoked", {"key_id": key.key_id, "name": key.name})
    return key
