from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from digitguard.audit.sqlite_append import SqliteAppender
from digitguard.audit.store import AuditStore, AuditStoreError, audit_engine


def _store(tmp_path: Path) -> AuditStore:
    store = AuditStore(audit_engine(f"sqlite:///{tmp_path / 'trail.db'}"))
    assert store.sqlite is not None, "a SQLite file trail takes the direct append path"
    return store


def _hold_lock_until_killed(database: str, ready: multiprocessing.synchronize.Event) -> None:
    with SqliteAppender(Path(database)).exclusive():
        ready.set()
        time.sleep(60)


def test_an_append_waits_for_the_host_wide_append_lock(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.sqlite is not None
    held = threading.Event()

    def hold_for_half_a_second() -> None:
        with SqliteAppender(store.sqlite.database).exclusive():  # another open file: another holder
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold_for_half_a_second)
    holder.start()
    held.wait(5)
    started = time.perf_counter()
    store.append("prediction", "anonymous:x", "r1", {"digit": 1})
    waited = time.perf_counter() - started
    holder.join()
    assert waited >= 0.4
    assert store.head() is not None and store.head()[0] == 1  # type: ignore[index]


def test_a_killed_lock_holder_does_not_wedge_the_trail(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.sqlite is not None
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_lock_until_killed, args=(str(store.sqlite.database), ready))
    holder.start()
    try:
        assert ready.wait(30)
        holder.kill()
        holder.join(10)
        started = time.perf_counter()
        store.append("prediction", "anonymous:x", "r1", {"digit": 1})
        assert time.perf_counter() - started < 5
    finally:
        if holder.is_alive():
            holder.kill()


def test_a_failed_append_writes_nothing_and_keeps_the_head(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.append("prediction", "anonymous:x", "r1", {"digit": 1})
    before = store.head()
    with pytest.raises(AuditStoreError, match="not written"):
        store.append("prediction", "anonymous:x", "r1", {"digit": 1, "not-json": float("nan")})
    assert store.head() == before
    assert [record.seq for record in store.find("r1")] == [1]
    assert store.verify({}).ok


@pytest.mark.parametrize(("mode", "pragma_value"), [("FULL", 2), ("NORMAL", 1)])
def test_the_append_connection_uses_the_configured_synchronous_mode(
    tmp_path: Path, mode: str, pragma_value: int
) -> None:
    store = AuditStore(audit_engine(f"sqlite:///{tmp_path / 'trail.db'}"), sqlite_synchronous=mode)
    store.append("prediction", "anonymous:x", "r1", {"digit": 1})
    assert store.sqlite is not None
    assert store.sqlite._connection().execute("PRAGMA synchronous").fetchone()[0] == pragma_value


def test_an_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuditStoreError, match="synchronous mode must be one of"):
        AuditStore(audit_engine(f"sqlite:///{tmp_path / 'trail.db'}"), sqlite_synchronous="OFF")
