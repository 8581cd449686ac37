"""The engine factory: a forked process (a gunicorn worker) never shares its parent's connections."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from digitguard.db import engine_for
from tests.web.servers import POSTGRES_URL


def backend_pid(engine: sa.engine.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone() -> None:
    engine = engine_for(POSTGRES_URL)
    try:
        parent = backend_pid(engine)  # now pooled: what a gunicorn master holds when it forks
    except sa.exc.OperationalError as exc:
        pytest.fail(f"the PostgreSQL server at {POSTGRES_URL} is needed for this test: {exc}")
    try:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            status = 1
            try:
                os.write(write, str(backend_pid(engine)).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        _, status = os.waitpid(child, 0)
        assert status == 0
        with os.fdopen(read) as pipe:
            assert int(pipe.read()) != parent  # its own session, not the parent's socket
        assert backend_pid(engine) == parent  # and the parent's session was not closed under it
    finally:
        engine.dispose()
