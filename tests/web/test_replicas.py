"""Two `digitguard serve` replicas on one PostgreSQL database and one Redis: one chain, one limit."""

from __future__ import annotations

import os
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import KeyPair
from tests.web.servers import (
    Server,
    create_key,
    fire,
    postgres_schema,
    predict,
    prediction_records,
    server,
    verify_trail,
)

REDIS_URL = os.environ.get("DIGITGUARD_TEST_REDIS", "redis://127.0.0.1:6379")
REQUESTS, CONCURRENCY = 300, 12
ANONYMOUS_LIMIT = 5


@dataclass(frozen=True)
class Replicas:
    database_url: str
    servers: list[Server]
    instances: list[Path]
    token: str
    runtime_dir: Path

    @property
    def addresses(self) -> list[str]:
        return [replica.address for replica in self.servers]


@pytest.fixture(scope="module")
def replicas(
    test_model_dir: Path, trusted_key: KeyPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"the Redis server at {REDIS_URL} is needed for this test: {exc}")
    root = tmp_path_factory.mktemp("replicas")
    runtime_dir = root / "run"
    runtime_dir.mkdir()
    with postgres_schema() as database_url:
        # What replicas share: the database, the limit counters and the secret key. Each keeps
        # its own instance directory (and so its own checkpoint-signing key).
        shared = {
            "DIGITGUARD_DATABASE_URL": database_url,
            "DIGITGUARD_RATELIMIT_STORAGE_URI": REDIS_URL,
            "DIGITGUARD_RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            "DIGITGUARD_SECRET_KEY": secrets.token_hex(32),
            "DIGITGUARD_ANONYMOUS_LIMIT": f"{ANONYMOUS_LIMIT}/minute",
            "XDG_RUNTIME_DIR": str(runtime_dir),  # where gunicorn would put its control socket
        }
        instances = [root / "a", root / "b"]
        servers = [server(test_model_dir, trusted_key.trust_dir, instance, shared) for instance in instances]
        try:
            for replica in servers:
                replica.start(wait=False)  # both start (and migrate) at once
            token = create_key(database_url, instances[0])
            for replica in servers:
                replica.wait_ready()
            yield Replicas(database_url, servers, instances, token, runtime_dir)
        finally:
            for replica in servers:
                replica.stop()


def test_a_load_on_two_replicas_gets_exactly_one_record_per_answer_in_one_chain_that_verifies(
    replicas: Replicas,
) -> None:
    answers = fire(replicas.addresses, REQUESTS, CONCURRENCY, replicas.token)
    assert Counter((a.status, a.error) for a in answers) == {(200, None): REQUESTS}
    assert Counter(a.address for a in answers) == dict.fromkeys(replicas.addresses, REQUESTS // 2)
    answered = Counter(a.body["request_id"] for a in answers)
    key = f"key:{replicas.token.split('_')[1]}"
    recorded = Counter(r.request_id for r in prediction_records(replicas.database_url) if r.principal == key)
    assert recorded == answered  # no more records, no fewer
    assert set(recorded.values()) == {1}  # and each answer's request id exactly once
    verified = verify_trail(replicas.database_url, replicas.instances)
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout
    assert "3 signed checkpoints" in verified.stdout  # at records 100, 200, 300, by either replica


def test_two_replicas_enforce_one_rate_limit_through_redis(replicas: Replicas) -> None:
    statuses = [predict(replicas.addresses[n % 2]).status for n in range(ANONYMOUS_LIMIT + 3)]
    assert statuses == [200] * ANONYMOUS_LIMIT + [429] * 3


def test_replicas_on_one_host_open_no_gunicorn_control_socket_to_take_from_each_other(
    replicas: Replicas,
) -> None:
    assert list(replicas.runtime_dir.iterdir()) == []
