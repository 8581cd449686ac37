"""Property-based fuzzing of the JSON API from its own OpenAPI document (schemathesis).

Every operation gets generated requests — valid and invalid — and each response must be no
5xx and must match the documented status codes, content types and schemas. The default bound
keeps CI fast (at least 1,000 checked requests); `make fuzz-api` runs 10× more examples.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from digitguard.security.keys import Role
from digitguard.web import create_app

EXAMPLES = int(os.environ.get("DIGITGUARD_FUZZ_EXAMPLES", "400"))


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, test_model_dir, trusted_key):
    database = tmp_path_factory.mktemp("fuzz") / "digitguard.db"
    return create_app(
        {
            "TESTING": True,
            "MODEL_DIR": str(test_model_dir),
            "TRUST_DIRS": [str(trusted_key.trust_dir)],
            "DATABASE_URL": f"sqlite:///{database}",
            "ANONYMOUS_LIMIT": "1000000/minute",
            "IP_LIMIT": "1000000/minute",
            "KEY_LIMIT": "1000000/minute",
            "KEY_QUOTA": "1000000/day",
            "INFERENCE_BUDGET_S": 60.0,  # a loaded machine must not turn explanations into 503s
        }
    )


@pytest.fixture(scope="module")
def admin_token(fuzzed_app) -> str:
    return fuzzed_app.extensions["digitguard.keys"].create("fuzzer", Role.ADMIN).token


def operations(fuzzed_app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed_app)
    return [result.ok() for result in schema.get_all_operations()]


def test_generated_requests_get_documented_answers_and_never_a_5xx(fuzzed_app, admin_token) -> None:
    checked = 0
    for operation in operations(fuzzed_app):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def exercise(case) -> None:
            nonlocal checked
            if case.operation.path.endswith("/revoke") or case.operation.path == "/signout":
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {admin_token}"}
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"
            # A PNG body is "schema-valid" as any bytes; whether they decode is not expressible in
            # JSON Schema, so refusing undecodable bytes is not a spec violation there.
            binary = case.media_type in ("image/png", "multipart/form-data")
            case.validate_response(
                response, excluded_checks=[checks.positive_data_acceptance] if binary else None
            )
            checked += 1

        exercise()
    assert checked >= 1000
