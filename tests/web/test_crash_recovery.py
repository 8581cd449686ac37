"""Crashes and outages under load: the chain verifies, no answer goes unrecorded, service resumes.

A worker or the whole server is SIGKILLed mid-load (SQLite and PostgreSQL), and PostgreSQL is
cut off behind a TCP proxy the test controls (the real server keeps running for everybody else).
A request in flight when its process or connection dies may have its record without getting its
answer; the reverse — an answer without a record — must never happen.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import KeyPair
from tests.web.servers import (
    BROKEN,
    POSTGRES_URL,
    Answer,
    Load,
    Server,
    create_key,
    fire,
    postgres_schema,
    prediction_records,
    server,
    verify_trail,
    via_port,
)
from tests.web.test_serve import free_port

CONCURRENCY = 8


@dataclass(frozen=True)
class Database:
    url: str
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["sqlite", "sqlite-synchronous-normal", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param.startswith("sqlite"):
        # The embedded default: the server finds it in its instance directory by itself. NORMAL
        # (no fsync per record) must survive a SIGKILL too: only a machine crash may lose records.
        env = {"DIGITGUARD_AUDIT_SQLITE_SYNCHRONOUS": "NORMAL"} if request.param.endswith("normal") else {}
        yield Database(f"sqlite:///{tmp_path / 'instance' / 'digitguard.db'}", env)
        return
    with postgres_schema() as url:
        yield Database(url, {"DIGITGUARD_DATABASE_URL": url})


@pytest.fixture
def make_server(test_model_dir: Path, trusted_key: KeyPair, tmp_path: Path) -> Iterator:
    started: list[Server] = []

    def make(env: dict[str, str]) -> Server:
        started.append(server(test_model_dir, trusted_key.trust_dir, tmp_path / "instance", env))
        return started[-1]

    yield make
    for each in started:
        each.stop()


def assert_every_answer_recorded_once(
    database_url: str, answers: list[Answer], in_doubt: frozenset[str] = frozenset()
) -> None:
    """Each 200 has exactly one record. A record without a 200 is allowed only for a request in
    doubt: refused while its commit may have gone through (``in_doubt``), or cut off with no reply
    at all (its id never reached the client, so these are only counted)."""
    answered = [a.body["request_id"] for a in answers if a.status == 200]
    recorded = Counter(record.request_id for record in prediction_records(database_url))
    assert [rid for rid in answered if recorded[rid] != 1] == []
    assert set(recorded.values()) <= {1}
    unexplained = set(recorded) - set(answered) - in_doubt
    assert len(unexplained) <= sum(1 for a in answers if a.status == BROKEN)


def assert_chain_verifies(database_url: str, instance: Path) -> None:
    verified = verify_trail(database_url, [instance])
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout


def statuses(answers: list[Answer]) -> Counter:
    return Counter((a.status, a.error) for a in answers)


class TestSigkillMidLoad:
    def test_a_killed_worker_is_replaced_and_leaves_a_chain_that_verifies_with_every_answer_recorded(
        self, database: Database, make_server
    ) -> None:
        served = make_server(database.env).start()
        with Load(lambda: served.address, CONCURRENCY, [None]) as load:
            load.wait_for(200, 40)
            killed = served.kill_worker()
            load.wait_for(200, 40, since=time.monotonic())  # the other worker, then the new one
        served.wait_ready()
        assert killed not in served.worker_pids()
        after = fire([served.address], 16, 4)
        assert statuses(after) == {(200, None): 16}
        answers = load.answers + after
        assert set(statuses(answers)) <= {(200, None), (BROKEN, None)}
        # A request the killed worker was handling has no answer; its record may or may not exist.
        assert_every_answer_recorded_once(database.url, answers)
        assert_chain_verifies(database.url, served.instance)

    def test_a_killed_server_restarts_on_the_same_database_with_the_chain_intact(
        self, database: Database, make_server
    ) -> None:
        served = make_server(database.env).start()
        with Load(lambda: served.address, CONCURRENCY, [None]) as load:
            load.wait_for(200, 40)
            served.kill()  # master and workers, no shutdown code anywhere
        served.start()
        after = fire([served.address], 16, 4)
        assert statuses(after) == {(200, None): 16}
        answers = load.answers + after
        assert set(statuses(answers)) <= {(200, None), (BROKEN, None)}
        assert_every_answer_recorded_once(database.url, answers)
        assert_chain_verifies(database.url, served.instance)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; :meth:`stop` is that server stopping: the port
    refuses connections and every open one is cut. :meth:`start` brings it back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> TcpProxy:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self._listener = listener
        self._spawn(self._accept, listener)
        return self

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            cut, self._open = list(self._open), set()
        if listener is not None:
            listener.close()
        for sock in cut:
            _close(sock)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    def _spawn(self, target, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    _close(client), _close(upstream)
                    return
                self._open.update((client, upstream))
                self._spawn(self._pump, client, upstream)
                self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def postgres_proxy() -> Iterator[TcpProxy]:
    target = sa.engine.make_url(POSTGRES_URL)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432)).start()
    yield proxy
    proxy.stop()


def test_a_postgresql_outage_is_503_never_an_unrecorded_answer_and_service_resumes_by_itself(
    postgres_proxy: TcpProxy, make_server, tmp_path: Path
) -> None:
    with postgres_schema() as direct_url:
        token = create_key(direct_url, tmp_path / "instance")
        served = make_server(
            {
                "DIGITGUARD_DATABASE_URL": via_port(direct_url, postgres_proxy.port),
                # Look for a new target model on almost every request, so the outage meets that read too.
                "DIGITGUARD_MODEL_CHECK_INTERVAL_S": "0.1",
            }
        ).start()
        workers = served.worker_pids()
        with Load(lambda: served.address, CONCURRENCY, [None, token]) as load:
            load.wait_for(200, 40)
            down = time.monotonic()
            postgres_proxy.stop()
            load.wait_for(503, 40, since=down)
            up = time.monotonic()
            postgres_proxy.start()
            load.wait_for(200, 40, since=up)
        assert served.worker_pids() == workers  # the same processes recovered: nothing restarted
        answers = load.answers
        assert set(statuses(answers)) <= {
            (200, None),
            (503, "audit_unavailable"),
            (503, "database_unavailable"),
        }, statuses(answers)
        during = [a for a in answers if a.started > down and a.finished < up]
        assert len(during) >= 40
        # Anonymous callers reach the trail and are refused there; keyed ones are refused when
        # their key cannot be read. Never a 200, never a 500.
        assert statuses([a for a in during if not a.keyed]).keys() == {(503, "audit_unavailable")}
        assert statuses([a for a in during if a.keyed]).keys() == {(503, "database_unavailable")}
        in_flight_at_the_cut = frozenset(
            a.body["request_id"] for a in answers if a.status == 503 and a.started <= down
        )
        assert_every_answer_recorded_once(direct_url, answers, in_doubt=in_flight_at_the_cut)
        assert_chain_verifies(direct_url, served.instance)
