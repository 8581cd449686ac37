"""The audit trail in a database: serialized appends, checkpoints, reads for verification.

Appends are serialized *in the database*, so any number of processes and hosts extend one
gap-free chain: PostgreSQL locks the single ``audit_head`` row (``SELECT … FOR UPDATE``) for
the length of the append's transaction; SQLite takes its write lock up front
(``BEGIN IMMEDIATE``). The record, the new head and any checkpoint are written in that one
transaction, so a crash leaves either all of them or none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection, Engine

from digitguard.audit.chain import (
    Checkpoint,
    StoredRecord,
    VerificationReport,
    seal,
    sign_checkpoint,
    verify_chain,
)
from digitguard.audit.record import GENESIS_HASH, AuditRecord, parse_record
from digitguard.audit.sqlite_append import SYNCHRONOUS_MODES, SqliteAppender
from digitguard.db import engine_for
from digitguard.errors import DigitguardError

metadata = sa.MetaData()

audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True, index=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
)


class AuditStoreError(DigitguardError):
    """The trail could not be read or written. Exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class CheckpointSigner:
    private_key: ec.EllipticCurvePrivateKey

    @property
    def key_id(self) -> str:
        from digitguard.models.signing import key_id

        return key_id(self.private_key.public_key())


def audit_engine(url: str) -> Engine:
    """An engine for the trail; on SQLite every transaction takes the write lock up front."""
    return engine_for(url, immediate=True)


def _sqlite_appender(engine: Engine, synchronous: str) -> SqliteAppender | None:
    """The direct append path for a SQLite file (see :mod:`digitguard.audit.sqlite_append`)."""
    if synchronous not in SYNCHRONOUS_MODES:
        raise AuditStoreError(f"the SQLite trail's synchronous mode must be one of {SYNCHRONOUS_MODES}")
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return SqliteAppender(Path(database), synchronous)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class AuditStore:
    def __init__(
        self,
        engine: Engine,
        signer: CheckpointSigner | None = None,
        checkpoint_every: int = 100,
        *,
        sqlite_synchronous: str = "FULL",
    ) -> None:
        """``sqlite_synchronous``: FULL (each record fsynced before ``append`` returns) or NORMAL
        (written to the WAL, durable against process crashes, not against power loss)."""
        self.engine = engine
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.sqlite = _sqlite_appender(engine, sqlite_synchronous)
        from digitguard.migrations import migrate

        migrate(engine)
        try:
            self._ensure_head()
        except sa.exc.SQLAlchemyError as exc:
            raise AuditStoreError(f"audit trail database unusable: {exc}") from exc

    def _ensure_head(self) -> None:
        """Create the chain's head row unless it exists — one atomic statement, because replicas
        starting together on a fresh database race to do it (a check-then-insert let one fail)."""
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = self.engine.dialect.name
        values = {"id": 1, "seq": 0, "hash": GENESIS_HASH}
        statement: sa.Executable
        if dialect == "postgresql":
            statement = postgresql.insert(audit_head).values(**values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            statement = sqlite.insert(audit_head).values(**values).on_conflict_do_nothing()
        else:
            raise AuditStoreError(f"the audit trail supports SQLite and PostgreSQL, not {dialect}")
        with self.engine.begin() as connection:
            connection.execute(statement)

    def append(
        self,
        kind: str,
        principal: str,
        request_id: str | None,
        details: dict[str, Any],
        also: Callable[[Connection], object] | None = None,
    ) -> AuditRecord:
        """Append one record at the head of the chain; raises :class:`AuditStoreError` if not durable.

        ``also`` runs first in the same transaction (e.g. the review queue's write for this
        decision): the record and that write are both committed or neither is. It needs this
        SQLAlchemy connection, so an append with ``also`` must never take a path that bypasses it.
        """
        try:
            if self.sqlite is None:
                with self.engine.begin() as connection:
                    if also is not None:
                        also(connection)
                    return self._append(connection, kind, principal, request_id, details)
            if also is None:
                return self._append_sqlite(self.sqlite, kind, principal, request_id, details)
            with self._serialized(), self.engine.begin() as connection:
                also(connection)
                return self._append(connection, kind, principal, request_id, details)
        except (sa.exc.SQLAlchemyError, sqlite3.Error, ValueError, TypeError) as exc:
            # ValueError/TypeError: details that have no canonical JSON (NaN, a set): refuse, fail closed.
            raise AuditStoreError(f"audit record not written: {exc}") from exc

    def _serialized(self) -> AbstractContextManager[None]:
        """The host-wide append lock on SQLite (the database serializes PostgreSQL's appends)."""
        return nullcontext() if self.sqlite is None else self.sqlite.exclusive()

    def _append_sqlite(
        self,
        appender: SqliteAppender,
        kind: str,
        principal: str,
        request_id: str | None,
        details: dict[str, Any],
    ) -> AuditRecord:
        sealed: list[AuditRecord] = []

        def build(seq: int, head_hash: str) -> tuple[StoredRecord, dict[str, object], Checkpoint | None]:
            record = AuditRecord(seq + 1, now_iso(), kind, principal, request_id, details, head_hash)
            stored = seal(record)
            sealed.append(record)
            columns: dict[str, object] = {"time": record.time, "kind": kind, "request_id": request_id}
            return stored, columns, self._due_checkpoint(record.seq, stored.hash)

        appender.append(build)
        return sealed[-1]

    def _due_checkpoint(self, seq: int, record_hash: str) -> Checkpoint | None:
        if self.signer is None or seq % self.checkpoint_every != 0:
            return None
        return sign_checkpoint(self.signer.private_key, self.signer.key_id, seq, record_hash, now_iso())

    def _append(
        self,
        connection: Connection,
        kind: str,
        principal: str,
        request_id: str | None,
        details: dict[str, Any],
    ) -> AuditRecord:
        head = connection.execute(
            sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
        ).one()
        record = AuditRecord(head.seq + 1, now_iso(), kind, principal, request_id, details, head.hash)
        stored = seal(record)
        connection.execute(
            audit_records.insert().values(
                seq=record.seq,
                time=record.time,
                kind=kind,
                request_id=request_id,
                body=stored.body,
                hash=stored.hash,
            )
        )
        connection.execute(
            audit_head.update().where(audit_head.c.id == 1).values(seq=record.seq, hash=stored.hash)
        )
        checkpoint = self._due_checkpoint(record.seq, stored.hash)
        if checkpoint is not None:
            connection.execute(audit_checkpoints.insert().values(**checkpoint.__dict__))
        return record

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (e.g. at shutdown, or on a timer)."""
        if self.signer is None:
            return None
        with self._serialized(), self.engine.begin() as connection:
            head = connection.execute(sa.select(audit_head.c.seq, audit_head.c.hash).with_for_update()).one()
            if (
                head.seq == 0
                or connection.execute(
                    sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == head.seq)
                ).first()
            ):
                return None
            return self._insert_checkpoint(connection, head.seq, head.hash)

    def _insert_checkpoint(self, connection: Connection, seq: int, record_hash: str) -> Checkpoint:
        assert self.signer is not None
        checkpoint = sign_checkpoint(self.signer.private_key, self.signer.key_id, seq, record_hash, now_iso())
        connection.execute(audit_checkpoints.insert().values(**checkpoint.__dict__))
        return checkpoint

    def rows(self) -> Iterator[StoredRecord]:
        with self.engine.connect() as connection:
            result = connection.execute(
                sa.select(audit_records.c.seq, audit_records.c.body, audit_records.c.hash).order_by(
                    audit_records.c.seq
                )
            )
            for row in result:
                yield StoredRecord(row.seq, row.body, row.hash)

    def checkpoints(self) -> list[Checkpoint]:
        with self.engine.connect() as connection:
            rows = connection.execute(audit_checkpoints.select().order_by(audit_checkpoints.c.seq)).all()
        return [Checkpoint(r.seq, r.hash, r.time, r.key_id, r.signature) for r in rows]

    def head(self) -> tuple[int, str] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
        return None if row is None else (row.seq, row.hash)

    def find(self, request_id: str) -> list[AuditRecord]:
        with self.engine.connect() as connection:
            bodies = (
                connection.execute(
                    sa.select(audit_records.c.body)
                    .where(audit_records.c.request_id == request_id)
                    .order_by(audit_records.c.seq)
                )
                .scalars()
                .all()
            )
        return [parse_record(body) for body in bodies]

    def verify(self, public_keys: dict[str, ec.EllipticCurvePublicKey]) -> VerificationReport:
        return verify_chain(self.rows(), self.checkpoints(), public_keys, self.head())


def load_signer(path: Path) -> CheckpointSigner:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AuditStoreError(f"{path}: the audit signing key must be an ECDSA private key")
    return CheckpointSigner(key)


def load_public_keys(paths: list[Path]) -> dict[str, ec.EllipticCurvePublicKey]:
    from digitguard.models.signing import key_id, read_public_key

    keys = {}
    for path in paths:
        public = read_public_key(path)
        keys[key_id(public)] = public
    return keys
