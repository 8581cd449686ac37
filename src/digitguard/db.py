"""Database engines for digitguard's state (keys, lock-outs, model target, audit trail).

One factory for every store: a network database gets pre-ping (it may drop idle connections);
a SQLite file gets its directory, WAL, ``synchronous=FULL`` and a busy timeout. Writers that
must be serialized (the audit trail) ask for ``immediate=True``: every SQLite transaction then
starts with ``BEGIN IMMEDIATE``, taking the write lock up front.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine


def engine_for(url: str, *, immediate: bool = False) -> Engine:
    is_sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
    engine = sa.create_engine(url, pool_pre_ping=not is_sqlite)
    if not is_sqlite:
        return engine
    database = engine.url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    event.listen(engine, "connect", lambda connection, _record: _sqlite_pragmas(connection, immediate))
    if immediate:
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, immediate: bool) -> None:
    if immediate:
        dbapi_connection.isolation_level = None  # the "begin" listener issues BEGIN IMMEDIATE itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a committed record is on disk
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
