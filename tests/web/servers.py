"""Real ``digitguard serve`` processes, a load against them, and what their trail says.

Shared by the multi-replica and crash tests (tests/web/test_replicas.py,
tests/web/test_crash_recovery.py): each server runs in its own process group with its log in a
file, so a test can SIGKILL a worker or the whole server and start it again on the same database.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from digitguard.audit.record import AuditRecord, parse_record
from tests.conftest import REPO_ROOT
from tests.web.test_serve import free_port

POSTGRES_URL = os.environ.get("DIGITGUARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PIXELS = [[1.0 if 4 <= row < 24 and col == 14 else 0.0 for col in range(28)] for row in range(28)]
BROKEN = -1  # the status of a request whose connection broke (a killed worker or server)


@contextmanager
def postgres_schema(server_url: str = POSTGRES_URL) -> Iterator[str]:
    """A URL for a new, empty schema in the real PostgreSQL database, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"the PostgreSQL server at {server_url} is needed for this test: {exc}")
    try:
        yield f"{server_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def via_port(url: str, port: int) -> str:
    """The same database (and schema) reached through another local port, e.g. a proxy's."""
    return sa.engine.make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


@dataclass
class Server:
    """One ``digitguard serve``: a gunicorn master and its workers, in their own process group."""

    command: list[str]
    env: dict[str, str]
    port: int
    instance: Path  # its state: secret key, checkpoint-signing key, SQLite database, and its log
    workers: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.instance / "serve.log"

    def start(self, wait: bool = True) -> Server:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://{self.address}/readyz", timeout=2) as response:
                    if response.status == 200 and len(self.worker_pids()) == self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.address} never became ready:\n{self.log.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's children."""
        assert self.process is not None
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            if int(fields[1]) == self.process.pid and fields[0] != "Z":
                children.append(int(stat.parent.name))
        return sorted(children)

    def kill_worker(self) -> int:
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """SIGKILL the master and every worker at once: no shutdown code runs anywhere."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """End a server a test is done with. SIGKILL: a graceful exit takes seconds (torch's
        interpreter teardown) and proves nothing more, and the crash tests show it is safe."""
        if self.process is not None and self.process.poll() is None:
            self.kill()


def server(
    model_dir: Path, trust_dir: Path, instance: Path, env: dict[str, str] | None = None, workers: int = 2
) -> Server:
    """A server (not started yet) with its state in ``instance`` and limits out of a load's way."""
    instance.mkdir(parents=True, exist_ok=True)
    metrics = instance / "metrics"
    metrics.mkdir(exist_ok=True)
    full_env = {
        **os.environ,
        "DIGITGUARD_TRUST_DIRS": str(trust_dir),
        "DIGITGUARD_INSTANCE_DIR": str(instance),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "DIGITGUARD_ANONYMOUS_LIMIT": "1000000/minute",
        "DIGITGUARD_IP_LIMIT": "1000000/minute",
        "DIGITGUARD_KEY_LIMIT": "1000000/minute",
        # Queue rather than shed load: these tests count answers, not refusals.
        "DIGITGUARD_QUEUE_WAIT_S": "10",
        "DIGITGUARD_INFERENCE_BUDGET_S": "10",
        **(env or {}),
    }
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "digitguard",
        "serve",
        "--model",
        str(model_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return Server(command, full_env, port, instance, workers)


def digitguard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command line, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "digitguard", *args],
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def create_key(database_url: str, instance: Path, role: str = "predict") -> str:
    created = digitguard(
        "keys", "create", "--role", role, "--name", f"load-{role}", "--db", database_url,
        env={"DIGITGUARD_INSTANCE_DIR": str(instance)},
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def verify_trail(database_url: str, instances: list[Path]) -> subprocess.CompletedProcess:
    """``digitguard audit verify`` with every instance's checkpoint-signing key."""
    keys = [instance / "audit-signing.pub" for instance in instances]
    options = [arg for key in keys if key.is_file() for arg in ("--key", str(key))]
    return digitguard("audit", "verify", "--db", database_url, *options)


def prediction_records(database_url: str) -> list[AuditRecord]:
    """Every prediction record, in chain order."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            bodies = connection.execute(
                sa.text("SELECT body FROM audit_records WHERE kind = 'prediction' ORDER BY seq")
            ).scalars()
            return [parse_record(body) for body in bodies]
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Answer:
    status: int  # BROKEN when the connection broke before a reply
    body: dict
    started: float
    finished: float
    address: str
    keyed: bool = False

    @property
    def error(self) -> str | None:
        return self.body.get("error")


def predict(address: str, token: str | None = None) -> Answer:
    host, port = address.split(":")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", "/api/v1/predict", body=json.dumps({"pixels": PIXELS}), headers=headers)
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read() or b"{}")
    except (OSError, http.client.HTTPException):
        status, body = BROKEN, {}
    finally:
        connection.close()
    return Answer(status, body, started, time.monotonic(), address, keyed=token is not None)


def fire(addresses: list[str], count: int, concurrency: int, token: str | None = None) -> list[Answer]:
    """``count`` predictions, ``concurrency`` at a time, spread over ``addresses`` in turn."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda n: predict(addresses[n % len(addresses)], token), range(count)))


class Load:
    """Predictions sent in the background, ``concurrency`` at a time, until :meth:`stop`."""

    def __init__(self, address_of: Callable[[], str], concurrency: int, tokens: list[str | None]) -> None:
        self.answers: list[Answer] = []
        self._address_of, self._tokens = address_of, tokens
        self._lock, self._stopping = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(concurrency)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self, number: int) -> None:
        sent = 0
        while not self._stopping.is_set():
            answer = predict(self._address_of(), self._tokens[(number + sent) % len(self._tokens)])
            sent += 1
            with self._lock:
                self.answers.append(answer)

    def count(self, status: int, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.status == status and a.started >= since)

    def wait_for(self, status: int, count: int, since: float = 0.0, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(status, since) < count:
            assert time.monotonic() < deadline, f"fewer than {count} answers {status} in {timeout_s} s"
            time.sleep(0.02)

    def stop(self) -> list[Answer]:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.answers
