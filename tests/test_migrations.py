"""Versioned schema migrations: applied once, in order, never onto a newer schema."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from digitguard.cli import main
from digitguard.migrations import LATEST, SchemaError, current_version, migrate, schema_version
from tests.audit.conftest import audit_url  # noqa: F401  (the SQLite/PostgreSQL fixture)


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_a_fresh_database_gets_every_table_and_the_latest_version(audit_url: str) -> None:  # noqa: F811
    engine = sa.create_engine(audit_url)
    assert migrate(engine) == LATEST
    assert {
        "api_keys",
        "signin_failures",
        "model_target",
        "audit_records",
        "audit_head",
        "audit_checkpoints",
        "schema_version",
    } <= table_names(engine)
    assert migrate(engine) == LATEST  # idempotent
    with engine.begin() as connection:
        assert current_version(connection) == LATEST
    engine.dispose()


def test_replicas_starting_together_migrate_once(audit_url: str) -> None:  # noqa: F811
    engines = [sa.create_engine(audit_url) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(migrate, engines)) == [LATEST] * 3
    with engines[0].connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar() == 1
    for engine in engines:
        engine.dispose()


def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(schema_version.update().values(version=LATEST + 1))
    with pytest.raises(SchemaError, match="newer than this digitguard"):
        migrate(engine)


def test_the_cli_reports_and_upgrades(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    main(["db", "version", "--db", url])
    assert "database schema version 0" in capsys.readouterr().out
    main(["db", "upgrade", "--db", url])
    assert f"schema at version {LATEST}" in capsys.readouterr().out


def test_every_store_refuses_a_newer_schema(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sa.create_engine(url)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(schema_version.update().values(version=LATEST + 1))
    with pytest.raises(SystemExit) as refused:
        main(["keys", "list", "--db", url])
    assert refused.value.code == 2
    assert "newer than this digitguard" in capsys.readouterr().err
