from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from digitguard.audit.store import AuditStore, CheckpointSigner, audit_engine

POSTGRES_URL = os.environ.get("DIGITGUARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def audit_signer() -> CheckpointSigner:
    return CheckpointSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty trail database: a SQLite file, or a new schema in the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    schema = f"audit_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"the PostgreSQL server at {POSTGRES_URL} is needed for this test: {exc}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def trail(audit_url: str, audit_signer: CheckpointSigner) -> Iterator[AuditStore]:
    store = AuditStore(audit_engine(audit_url), audit_signer, checkpoint_every=5)
    yield store
    store.engine.dispose()
