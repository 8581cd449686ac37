"""The OpenAPI 3.1 document is valid, and real responses match it."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from digitguard.web.openapi import openapi_document


def assert_matches_schema(instance: Any, schema_name: str) -> None:
    document = openapi_document()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


class TestDocument:
    def test_is_a_valid_openapi_3_1_document(self) -> None:
        validate(openapi_document())
        assert openapi_document()["openapi"].startswith("3.1")

    def test_is_served(self, client: FlaskClient) -> None:
        assert client.get("/api/v1/openapi.json").get_json() == openapi_document()

    def test_every_route_of_the_app_is_documented(self, client: FlaskClient) -> None:
        documented = set(openapi_document()["paths"])
        rules = client.application.url_map.iter_rules()
        routes = {re.sub(r"<(\w+)>", r"{\1}", r.rule) for r in rules if not r.rule.startswith("/static")}
        assert routes - {"/"} == documented

    def test_the_schema_check_rejects_a_wrong_response(self) -> None:
        import pytest

        with pytest.raises(jsonschema.ValidationError):
            assert_matches_schema({"digit": 11, "probabilities": []}, "Prediction")
