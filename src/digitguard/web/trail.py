"""Writing the audit trail from the web app: every decision and change, or no answer at all."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy.engine import Connection

from digitguard.audit.keys import ensure_signer
from digitguard.audit.store import AuditStore, AuditStoreError, audit_engine
from digitguard.web.errors import ApiError
from digitguard.web.identity import client_address


def install(app: Flask, database_url: str) -> AuditStore:
    from pathlib import Path

    key_file = Path(app.config["AUDIT_SIGNING_KEY_FILE"] or Path(app.instance_path) / "audit-signing.pem")
    store = AuditStore(
        audit_engine(database_url),
        ensure_signer(key_file),
        int(app.config["AUDIT_CHECKPOINT_EVERY"]),
        sqlite_synchronous=str(app.config["AUDIT_SQLITE_SYNCHRONOUS"]).upper(),
    )
    app.extensions["digitguard.trail"] = store
    return store


def principal_label() -> str:
    """The key id, or ``anonymous:`` and a keyed hash of the client address (no raw addresses)."""
    principal = g.get("principal")
    if principal is not None and principal.key_id:
        return f"key:{principal.key_id}"
    if current_app.config["AUDIT_RAW_ADDRESSES"]:
        return f"anonymous:{client_address()}"
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), client_address().encode(), hashlib.sha256)
    return f"anonymous:{digest.hexdigest()[:16]}"


def record(
    kind: str,
    details: dict[str, Any],
    *,
    required: bool = True,
    also: Callable[[Connection], object] | None = None,
) -> None:
    """Append to the trail; when ``required``, a failed write refuses the request with 503.

    ``also`` is written in the record's transaction (see :meth:`AuditStore.append`).
    """
    store: AuditStore = current_app.extensions["digitguard.trail"]
    try:
        store.append(kind, principal_label(), g.get("request_id"), details, also)
    except AuditStoreError as exc:
        current_app.logger.error("audit write failed: %s", exc)
        if required:
            raise ApiError(
                503,
                "audit_unavailable",
                "the decision could not be recorded, so it is not returned",
                retry_after_s=1,
            ) from exc
