"""Rate limits, quotas, bounded concurrency and the inference budget — each provoked."""

from __future__ import annotations

import os
import time
import uuid

import pytest
import redis

from digitguard.security.keys import Role
from digitguard.web import create_app
from tests.web.test_access import PIXELS, bearer, sign_in

REDIS_URL = os.environ.get("DIGITGUARD_TEST_REDIS", "redis://127.0.0.1:6379")


def predict(client, token=None):
    return client.post("/api/v1/predict", json=PIXELS, headers=bearer(token))


class TestRateLimits:
    def test_a_burst_of_anonymous_requests_past_the_limit_gets_429_with_retry_after(self, app_config) -> None:
        app = create_app({**app_config, "ANONYMOUS_LIMIT": "5/minute"})
        client = app.test_client()
        statuses = [predict(client).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        refused = predict(client)
        assert refused.get_json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 61  # whole seconds, rounded up
        metrics = app.test_client().get(
            "/metrics", headers=bearer(app.extensions["digitguard.keys"].create("m", Role.ADMIN).token)
        )
        assert 'digitguard_rate_limited_total{route="api.predict"} 3.0' in metrics.get_data(as_text=True)

    def test_each_key_has_its_own_limit(self, app_config) -> None:
        app = create_app({**app_config, "KEY_LIMIT": "3/minute"})
        store, client = app.extensions["digitguard.keys"], app.test_client()
        first, second = (store.create(name, Role.PREDICT).token for name in ("one", "two"))
        assert [predict(client, first).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert predict(client, second).status_code == 200

    def test_the_per_address_limit_applies_to_keys_too(self, app_config) -> None:
        app = create_app({**app_config, "IP_LIMIT": "4/minute"})
        store, client = app.extensions["digitguard.keys"], app.test_client()
        tokens = [store.create(f"k{i}", Role.PREDICT).token for i in range(5)]
        assert [predict(client, token).status_code for token in tokens] == [200] * 4 + [429]

    def test_the_quota_resets_on_schedule(self, app_config) -> None:
        app = create_app({**app_config, "KEY_QUOTA": "2 per 2 seconds"})
        token = app.extensions["digitguard.keys"].create("q", Role.PREDICT).token
        client = app.test_client()
        assert [predict(client, token).status_code for _ in range(3)] == [200, 200, 429]
        time.sleep(float(predict(client, token).headers["Retry-After"]) + 0.2)
        assert predict(client, token).status_code == 200

    def test_switched_off_no_limit_is_counted(self, app_config) -> None:
        app = create_app({**app_config, "ANONYMOUS_LIMIT": "1/minute", "RATELIMIT_ENABLED": False})
        client = app.test_client()
        assert [predict(client).status_code for _ in range(3)] == [200] * 3

    def test_the_sign_in_form_has_its_own_per_address_limit(self, app_config) -> None:
        app = create_app({**app_config, "SIGNIN_LIMIT": "2/minute", "SIGNIN_FREE_ATTEMPTS": 100})
        token = app.extensions["digitguard.keys"].create("r", Role.REVIEWER).token
        client = app.test_client()
        statuses = [sign_in(client, token).status_code for _ in range(3)]
        assert statuses == [302, 302, 429]
        assert predict(client, token).status_code == 200  # predictions count apart


class TestSharedLimitsInRedis:
    @pytest.fixture
    def redis_config(self, app_config) -> dict:
        try:
            redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
        except redis.RedisError as exc:
            pytest.fail(f"the Redis server at {REDIS_URL} is needed for this test: {exc}")
        return {
            **app_config,
            "RATELIMIT_STORAGE_URI": REDIS_URL,
            "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            "ANONYMOUS_LIMIT": "4/minute",
        }

    def test_two_app_instances_enforce_one_limit(self, redis_config) -> None:
        first, second = create_app(redis_config).test_client(), create_app(redis_config).test_client()
        statuses = [predict(client).status_code for client in (first, second, first, second, first, second)]
        assert statuses == [200, 200, 200, 200, 429, 429]

    def test_separate_prefixes_do_not_share(self, redis_config) -> None:
        other = {**redis_config, "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
        first, second = create_app(redis_config).test_client(), create_app(other).test_client()
        assert [predict(first).status_code for _ in range(4)] == [200] * 4
        assert predict(second).status_code == 200

    def test_an_unreachable_limit_store_refuses_with_503_not_an_unlimited_answer(self, app_config) -> None:
        # Nothing listens on port 9 (discard): every count fails, so no prediction is answered.
        app = create_app({**app_config, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:9"})
        response = predict(app.test_client())
        assert response.status_code == 503
        assert response.get_json()["error"] == "limits_unavailable"
        assert response.headers["Retry-After"] == "1"


class TestResourceLimits:
    def test_overload_is_503_with_retry_after_instead_of_a_queue(self, app_config) -> None:
        app = create_app({**app_config, "MAX_CONCURRENT_INFERENCES": 1, "QUEUE_WAIT_S": 0.05})
        slots = app.extensions["digitguard.inference_slots"]
        slots.acquire()  # another request is busy with the only slot
        try:
            started = time.perf_counter()
            response = predict(app.test_client())
            assert time.perf_counter() - started < 2
        finally:
            slots.release()
        assert response.status_code == 503
        assert response.get_json()["error"] == "overloaded"
        assert response.headers["Retry-After"] == "1"
        assert predict(app.test_client()).status_code == 200

    def test_a_spent_inference_budget_is_503(self, app_config) -> None:
        app = create_app({**app_config, "INFERENCE_BUDGET_S": 0.0})
        response = predict(app.test_client())
        assert response.status_code == 503
        assert response.get_json()["error"] == "inference_timeout"
