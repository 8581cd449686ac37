"""Who is asking: a Bearer API key, a signed-in browser session, or anonymous.

Runs before every request. A Bearer header that does not verify is refused at once (401);
a session whose key was revoked since sign-in is dropped and the request is anonymous.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g, request, session

from digitguard.security.keys import InvalidKeyError, Role
from digitguard.security.store import KeyStore
from digitguard.web.errors import ApiError

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    kind: str  # "key" or "anonymous"
    key_id: str | None = None
    name: str | None = None
    role: Role | None = None
    via: str | None = None  # "bearer" or "session"

    @property
    def label(self) -> str:
        return self.role.value if self.role else ANONYMOUS


ANONYMOUS_PRINCIPAL = Principal(kind=ANONYMOUS)


def key_store() -> KeyStore:
    return current_app.extensions["digitguard.keys"]


def client_address() -> str:
    return request.remote_addr or "unknown"


def register(app: Flask) -> None:
    @app.before_request
    def identify() -> None:
        g.principal = _principal()


def _principal() -> Principal:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "invalid_credentials", "use 'Authorization: Bearer <API key>'")
        try:
            key = key_store().authenticate(token.strip())
        except InvalidKeyError as exc:
            raise ApiError(401, "invalid_credentials", str(exc)) from exc
        return Principal("key", key.key_id, key.name, key.role, "bearer")
    key_id = session.get("key_id")
    if key_id:
        stored = key_store().get(key_id)
        if stored is not None and stored.active:
            return Principal("key", stored.key_id, stored.name, stored.role, "session")
        session.pop("key_id", None)  # revoked or deleted since sign-in
    return ANONYMOUS_PRINCIPAL
