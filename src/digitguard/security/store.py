"""Database tables for keys and sign-in throttling, and the key store.

SQLAlchemy Core; the URL decides the backend: ``sqlite:///path.db`` (the embedded default,
WAL mode) or ``postgresql+psycopg://…`` for several replicas. The audit trail lives in the
same database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digitguard.db import engine_for
from digitguard.errors import DigitguardError
from digitguard.security.keys import (
    ApiKey,
    InvalidKeyError,
    NewKey,
    Role,
    hash_secret,
    new_token,
    parse_token,
    token_fingerprint,
    verify_secret,
)

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(12), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("secret_hash", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

signin_failures = sa.Table(
    "signin_failures",
    metadata,
    sa.Column("subject", sa.String(200), primary_key=True),  # "ip:<address>" or "key:<key id>"
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
)


model_target = sa.Table(
    "model_target",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("model_dir", sa.Text, nullable=False),
    sa.Column("weights_sha256", sa.String(64), nullable=False),
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
)


class StoreError(DigitguardError):
    exit_code = 2


def connect(url: str) -> Engine:
    """An engine for ``url`` with the schema migrated to the version this code knows."""
    from digitguard.migrations import migrate

    engine = engine_for(url)
    migrate(engine)
    return engine


def now() -> datetime:
    return datetime.now(UTC)


def _as_key(row: Any) -> ApiKey:
    revoked = None if row.revoked_at is None else utc(row.revoked_at)
    return ApiKey(row.key_id, row.name, Role(row.role), utc(row.created_at), revoked)


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything here is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_KEY_BY_ID = api_keys.select().where(api_keys.c.key_id == sa.bindparam("key_id"))
_SQLITE_KEY_BY_ID = (
    "SELECT key_id, name, role, secret_hash, created_at, revoked_at FROM api_keys WHERE key_id = ?"
)


@dataclass(frozen=True)
class _SqliteKeyRow:
    key_id: str
    name: str
    role: str
    secret_hash: str
    created_at: datetime | None
    revoked_at: datetime | None


def _parse_time(value: str | None) -> datetime | None:
    # SQLAlchemy stores SQLite datetimes as ISO text without a zone; they are UTC.
    return None if value is None else datetime.fromisoformat(value)


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._verified: dict[str, str] = {}  # token fingerprint -> key id, successful checks only
        self._sqlite_path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._local = threading.local()

    def create(self, name: str, role: Role) -> NewKey:
        if not name.strip():
            raise StoreError("a key needs a non-empty name")
        key_id, token = new_token()
        _, secret = parse_token(token)
        key = ApiKey(key_id, name.strip(), Role(role), now(), None)
        with self.engine.begin() as connection:
            connection.execute(
                api_keys.insert().values(
                    key_id=key.key_id,
                    name=key.name,
                    role=key.role.value,
                    secret_hash=hash_secret(secret),
                    created_at=key.created_at,
                    revoked_at=None,
                )
            )
        return NewKey(key, token)

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as connection:
            rows = connection.execute(api_keys.select().order_by(api_keys.c.created_at)).all()
        return [_as_key(row) for row in rows]

    def get(self, key_id: str) -> ApiKey | None:
        row = self._row(key_id)
        return None if row is None else _as_key(row)

    def _row(self, key_id: str) -> Any:
        """The key's row, read fresh on every call (revocation must take effect at once)."""
        if self._sqlite_path and self._sqlite_path != ":memory:":
            return self._sqlite_row(key_id)
        with self.engine.connect() as connection:
            return connection.execute(_KEY_BY_ID, {"key_id": key_id}).first()

    def _sqlite_row(self, key_id: str) -> Any:
        # The per-request hot path: a read-only connection per thread (and per process, as
        # gunicorn forks), autocommit so that every query sees the latest committed state.
        connection = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != os.getpid():
            connection = sqlite3.connect(
                f"file:{self._sqlite_path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            self._local.connection, self._local.pid = connection, os.getpid()
        row = connection.execute(_SQLITE_KEY_BY_ID, (key_id,)).fetchone()
        if row is None:
            return None
        return _SqliteKeyRow(
            row["key_id"],
            row["name"],
            row["role"],
            row["secret_hash"],
            _parse_time(row["created_at"]),
            _parse_time(row["revoked_at"]),
        )

    def revoke(self, key_id: str) -> ApiKey:
        with self.engine.begin() as connection:
            result = connection.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        key = self.get(key_id)
        if key is None:
            raise StoreError(f"no key with id {key_id!r}")
        if result.rowcount == 0 and key.active:
            raise StoreError(f"key {key_id!r} could not be revoked")
        return key

    def authenticate(self, token: str) -> ApiKey:
        """The active key of ``token``, else :class:`InvalidKeyError`; revocation is checked every time."""
        key_id, secret = parse_token(token)
        row = self._row(key_id)
        if row is None:
            raise InvalidKeyError("unknown API key")
        fingerprint = token_fingerprint(token)
        if self._verified.get(fingerprint) != key_id:
            if not verify_secret(secret, row.secret_hash):
                raise InvalidKeyError("wrong API key")
            self._verified[fingerprint] = key_id
        key = _as_key(row)
        if not key.active:
            raise InvalidKeyError("revoked API key")
        return key
