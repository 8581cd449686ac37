"""Versioned schema migrations for digitguard's database (keys, lock-outs, model target, audit trail,
review queue).

A small, explicit equivalent of Alembic: ``schema_version`` holds the applied version and
``MIGRATIONS`` lists each step in order. ``migrate`` applies the missing steps in one transaction
(PostgreSQL takes an advisory lock first, so replicas starting together do not race) and refuses
a database whose version is newer than this code knows — an old binary must not write to a
schema it does not understand.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digitguard.errors import DigitguardError

ADVISORY_LOCK_ID = 0x6469676974  # "digit"

schema_version = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)


class SchemaError(DigitguardError):
    """The database schema is newer than this code, or a migration failed. Exit status 2."""

    exit_code = 2


def _v1_initial(connection: Connection) -> None:
    from digitguard.audit import store as audit_store
    from digitguard.security import store as security_store

    security_store.metadata.create_all(connection)
    audit_store.metadata.create_all(connection)


def _v2_review_queue(connection: Connection) -> None:
    from digitguard.review import store as review_store

    review_store.metadata.create_all(connection)


def _v3_abstention_reason(connection: Connection) -> None:
    # Step 2 creates the table from today's metadata, so a database created in this same run
    # already has the column; only a version-2 database needs it added.
    if "abstention_reason" not in {c["name"] for c in sa.inspect(connection).get_columns("review_items")}:
        connection.exec_driver_sql("ALTER TABLE review_items ADD COLUMN abstention_reason VARCHAR(32)")


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "keys, sign-in lock-outs, model target, audit trail", _v1_initial),
    (2, "human review queue", _v2_review_queue),
    (3, "why an abstained review item abstained (review_items.abstention_reason)", _v3_abstention_reason),
]
LATEST = MIGRATIONS[-1][0]


def current_version(connection: Connection) -> int:
    schema_version.create(connection, checkfirst=True)
    row = connection.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1)).first()
    return 0 if row is None else int(row.version)


def _serialize(connection: Connection) -> None:
    """Make concurrent migrations wait for each other: an advisory lock, or SQLite's write lock."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
    elif connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:  # the audit engine already began one IMMEDIATE
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> int:
    """Bring the schema to :data:`LATEST`; return the version it is at."""
    try:
        with engine.begin() as connection:
            _serialize(connection)
            version = current_version(connection)
            if version > LATEST:
                raise SchemaError(
                    f"the database schema is at version {version}, newer than this digitguard ({LATEST}); "
                    "upgrade digitguard instead of writing to it"
                )
            for number, _description, step in MIGRATIONS:
                if number > version:
                    step(connection)
            if version == 0:
                connection.execute(schema_version.insert().values(id=1, version=LATEST))
            elif version < LATEST:
                connection.execute(
                    schema_version.update().where(schema_version.c.id == 1).values(version=LATEST)
                )
            return LATEST
    except sa.exc.SQLAlchemyError as exc:
        raise SchemaError(f"schema migration failed: {exc}") from exc
