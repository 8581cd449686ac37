"""Database engines for digitguard's state (keys, lock-outs, model target, audit trail).

One factory for every store: a network database gets pre-ping (it may drop idle connections,
and after an outage the first checkout reconnects instead of failing); a SQLite file gets its
directory, WAL, ``synchronous=FULL`` and a busy timeout. Writers that must be serialized (the
audit trail) ask for ``immediate=True``: every SQLite transaction then starts with
``BEGIN IMMEDIATE``, taking the write lock up front. Every engine is fork-safe: a connection
opened by another process (gunicorn builds the app in the master, then forks) is never used.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

# What a database that is down, unreachable or saturated raises (rather than a bug in a query).
UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    sqlite3.OperationalError,  # the key store's direct read-only SQLite connection
)


def engine_for(url: str, *, immediate: bool = False) -> Engine:
    is_sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
    engine = sa.create_engine(url, pool_pre_ping=not is_sqlite)
    _fork_safe(engine)
    if not is_sqlite:
        return engine
    database = engine.url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    event.listen(engine, "connect", lambda connection, _record: _sqlite_pragmas(connection, immediate))
    if immediate:
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _fork_safe(engine: Engine) -> None:
    """Start every forked child with an empty pool instead of the parent's open connections.

    Two processes on one connection interleave their statements on one socket and in one
    transaction: the audit trail's row lock then serializes nothing, and one process's commit or
    rollback ends the other's work. ``dispose(close=False)`` drops the inherited connections
    without touching them (SQLAlchemy's advice for pools and multiprocessing).
    """
    reference = weakref.ref(engine)

    def in_child() -> None:
        inherited = reference()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=in_child)


def _sqlite_pragmas(dbapi_connection: Any, immediate: bool) -> None:
    if immediate:
        dbapi_connection.isolation_level = None  # the "begin" listener issues BEGIN IMMEDIATE itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a committed record is on disk
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
