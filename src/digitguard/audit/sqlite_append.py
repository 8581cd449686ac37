"""The SQLite trail's append path: one host-wide append lock and a direct ``sqlite3`` connection.

SQLite serializes writers itself, but a writer that finds the database locked *sleeps* in its
busy handler (1, 2, 5, 10 … ms) before trying again, so two gunicorn workers appending a
record per prediction wait for each other in milliseconds even though each append holds the
lock for well under one. A SQLite database only ever lives on one host, so every appender can
first take an exclusive ``flock`` on ``<database>.append-lock``: the kernel hands it to the next
waiter the moment it is released, and ``BEGIN IMMEDIATE`` then finds the database free. The
lock is released by the kernel when its holder dies, so a SIGKILLed worker never wedges the
others.

The insert itself goes through one ``sqlite3`` connection per process and thread instead of
SQLAlchemy's statement compilation (three statements a record; SQLAlchemy's Core cost more
than the statements themselves). The transaction is the same as :class:`AuditStore`'s: read
the head, insert the record, move the head, and insert a checkpoint when one is due — all or
nothing.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from digitguard.audit.chain import Checkpoint, StoredRecord

SYNCHRONOUS_MODES = ("FULL", "NORMAL")
SELECT_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
INSERT_RECORD = (
    "INSERT INTO audit_records (seq, time, kind, request_id, body, hash) VALUES (?, ?, ?, ?, ?, ?)"
)
MOVE_HEAD = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"
INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoints (seq, hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?)"
)


class SqliteAppender:
    """Appends sealed records to a SQLite trail; ``build`` turns the head into what to insert."""

    def __init__(self, database: Path, synchronous: str = "FULL") -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self.database = database
        self.synchronous = synchronous
        self.lock_path = database.with_name(database.name + ".append-lock")
        self._local = threading.local()
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        appender = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_locks(appender()))

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the host-wide append lock (blocking; released by the kernel if the holder dies).

        One lock file descriptor per process: a forked child forgets its parent's (an inherited
        descriptor would share the parent's lock) and its thread lock (another thread may have
        held it at the fork). The threads of one process take turns on that thread lock first,
        since ``flock`` cannot tell them apart.
        """
        with self._thread_lock:
            descriptor = self._lock_descriptor()
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def _lock_descriptor(self) -> int:
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._lock_fd

    def append(
        self, build: Callable[[int, str], tuple[StoredRecord, dict[str, object], Checkpoint | None]]
    ) -> None:
        """One transaction: head → ``build(seq, hash)`` → record, new head, optional checkpoint.

        ``build`` returns the sealed record, the record's indexed columns (``time``, ``kind``,
        ``request_id``) and a checkpoint to store with it, or ``None``. Raises ``sqlite3.Error``
        when anything fails; nothing is then written.
        """
        connection = self._connection()
        with self.exclusive():
            connection.execute("BEGIN IMMEDIATE")
            try:
                seq, head_hash = connection.execute(SELECT_HEAD).fetchone()
                stored, columns, checkpoint = build(int(seq), str(head_hash))
                connection.execute(
                    INSERT_RECORD,
                    (
                        stored.seq,
                        columns["time"],
                        columns["kind"],
                        columns["request_id"],
                        stored.body,
                        stored.hash,
                    ),
                )
                connection.execute(MOVE_HEAD, (stored.seq, stored.hash))
                if checkpoint is not None:
                    connection.execute(
                        INSERT_CHECKPOINT,
                        (
                            checkpoint.seq,
                            checkpoint.hash,
                            checkpoint.time,
                            checkpoint.key_id,
                            checkpoint.signature,
                        ),
                    )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def _connection(self) -> sqlite3.Connection:
        """This process's and thread's connection (a forked child never uses its parent's)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            connection = sqlite3.connect(self.database, isolation_level=None, timeout=10.0)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
            local.connection, local.pid = connection, os.getpid()
        return local.connection


def _forget_locks(appender: SqliteAppender | None) -> None:
    """In a forked child: a fresh thread lock, and a lock descriptor of the child's own."""
    if appender is not None:
        appender._thread_lock = threading.Lock()
        appender._lock_fd = None  # the inherited descriptor stays open for the parent's sake
