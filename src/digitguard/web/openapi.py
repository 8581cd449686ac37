"""The OpenAPI 3.1 description of the JSON API (tests validate real responses against it)."""

from __future__ import annotations

from typing import Any

import digitguard

PROBABILITIES = {
    "type": "array",
    "items": {"type": "number", "minimum": 0, "maximum": 1},
    "minItems": 10,
    "maxItems": 10,
}
GRID = {
    "type": "array",
    "minItems": 28,
    "maxItems": 28,
    "items": {"type": "array", "minItems": 28, "maxItems": 28, "items": {"type": "number"}},
}
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}

SCHEMAS: dict[str, Any] = {
    "Prediction": {
        "type": "object",
        "required": [
            "digit",
            "probabilities",
            "confidence",
            "abstained",
            "abstain_below",
            "model_sha256",
            "request_id",
        ],
        "additionalProperties": False,
        "properties": {
            "digit": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": 9,
                "description": "null when abstaining",
            },
            "probabilities": PROBABILITIES,
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "abstained": {"type": "boolean"},
            "abstain_below": {"type": "number", "minimum": 0, "maximum": 1},
            "model_sha256": SHA256,
            "request_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "input": {**GRID, "description": "with ?details=1: the 28x28 image exactly as the model saw it"},
            "explanation": {
                **GRID,
                "description": "with ?details=1: Integrated Gradients, scaled to [-1, 1]",
            },
            "explained_class": {"type": "integer", "minimum": 0, "maximum": 9},
        },
    },
    "PixelsRequest": {
        "type": "object",
        "required": ["pixels"],
        "properties": {
            "pixels": {
                "type": "array",
                "minItems": 28,
                "maxItems": 28,
                "items": {
                    "type": "array",
                    "minItems": 28,
                    "maxItems": 28,
                    "items": {"type": "number", "minimum": 0, "maximum": 1},
                },
                # An all-zero grid is "nothing drawn" (422): at least one pixel must carry ink.
                "contains": {"type": "array", "contains": {"type": "number", "exclusiveMinimum": 0}},
                "description": "28x28 numbers in [0, 1], ink = 1, used as is; at least one above 0",
            }
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {
                "type": "string",
                "description": "stable code",
                "examples": ["unsupported_media_type", "payload_too_large", "invalid_png", "nothing_drawn"],
            },
            "message": {"type": "string"},
            "request_id": {"type": "string"},
        },
    },
    "ApiKey": {
        "type": "object",
        "required": ["key_id", "name", "role", "created_at", "revoked_at"],
        "additionalProperties": False,
        "properties": {
            "key_id": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
            "name": {"type": "string"},
            "role": {"enum": ["predict", "reviewer", "admin"]},
            "created_at": {"type": "string"},
            "revoked_at": {"type": ["string", "null"]},
        },
    },
    "KeyList": {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}}},
    },
    "KeyCreated": {
        "type": "object",
        "required": ["key", "token"],
        "properties": {
            "key": {"$ref": "#/components/schemas/ApiKey"},
            "token": {"type": "string", "description": "shown once; only an scrypt hash is stored"},
        },
    },
    "KeyRequest": {
        "type": "object",
        "required": ["name", "role"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "role": {"enum": ["predict", "reviewer", "admin"]},
        },
    },
    "KeyRevoked": {
        "type": "object",
        "required": ["key"],
        "properties": {"key": {"$ref": "#/components/schemas/ApiKey"}},
    },
    "Reloaded": {
        "type": "object",
        "required": ["model_sha256", "model", "path"],
        "properties": {"model_sha256": SHA256, "model": {"type": "string"}, "path": {"type": "string"}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "alive"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "model_sha256"],
        "properties": {
            "status": {"const": "ready"},
            "model_sha256": SHA256,
            "model": {"type": "string"},
            "architecture": {"type": "string"},
            "signer_key_id": SHA256,
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _html(summary: str, operation: str, method_responses: dict[str, str]) -> dict[str, Any]:
    return {
        "operationId": operation,
        "summary": summary,
        "responses": {status: {"description": text} for status, text in method_responses.items()},
    }


ADMIN_ONLY = {"401": "No credential", "403": "Not an admin"}
KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _admin_json(operation: str, summary: str, ok: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    status, schema, description = ok
    responses = {
        status: _ok(schema, description),
        "401": _error("No credential"),
        "403": _error("Not an admin"),
    }
    responses.update(extra.pop("responses", {}))
    return {
        "operationId": operation,
        "summary": summary,
        "security": [{"bearer": []}, {"session": []}],
        "responses": responses,
        **extra,
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "digitguard",
            "version": digitguard.__version__,
            "description": "Handwritten digit recognition by a signature-verified MNIST model.",
        },
        "paths": {
            "/api/v1/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Recognise one digit",
                    "parameters": [
                        {
                            "name": "details",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
                            "description": "1: also return the model input and an explanation heatmap",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {
                                        "image": {"type": "string", "contentMediaType": "image/png"}
                                    },
                                }
                            },
                            "application/json": {"schema": {"$ref": "#/components/schemas/PixelsRequest"}},
                        },
                    },
                    "responses": {
                        "200": _ok("Prediction", "The answer; digit is null when the model abstains"),
                        "400": _error("Undecodable PNG or malformed JSON"),
                        "413": _error("Body too large"),
                        "401": _error("Anonymous use is switched off, or the key is invalid or revoked"),
                        "403": _error("CSRF token missing (signed-in browser sessions)"),
                        "415": _error("Unsupported content type"),
                        "422": _error("Nothing drawn, or pixels of the wrong shape or range"),
                        "429": _error("Rate limit or daily quota exceeded; see Retry-After"),
                        "503": _error("Overloaded or inference budget exceeded; see Retry-After"),
                    },
                    "security": [{}, {"bearer": []}, {"session": []}],
                }
            },
            "/api/v1/keys": {
                "get": _admin_json(
                    "keys_list", "List API keys", ("200", "KeyList", "All keys, without secrets")
                ),
                "post": _admin_json(
                    "keys_create",
                    "Create an API key",
                    ("201", "KeyCreated", "The key and its token (shown once)"),
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/KeyRequest"}}
                        },
                    },
                    responses={"400": _error("Malformed JSON"), "422": _error("Invalid name or role")},
                ),
            },
            "/api/v1/keys/{key_id}/revoke": {
                "post": _admin_json(
                    "keys_revoke",
                    "Revoke an API key (effective at once)",
                    ("200", "KeyRevoked", "The revoked key"),
                    parameters=[KEY_ID],
                    responses={"404": _error("No such key")},
                )
            },
            "/api/v1/model/reload": {
                "post": _admin_json(
                    "model_reload",
                    "Verify a model directory and serve it (all workers follow)",
                    ("200", "Reloaded", "The model now served"),
                    requestBody={
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "properties": {"model_dir": {"type": "string"}}}
                            }
                        },
                    },
                    responses={
                        "400": _error("Malformed JSON"),
                        "422": _error("The model failed verification; the old one keeps serving"),
                    },
                )
            },
            "/metrics": {
                "get": _html(
                    "Prometheus metrics (admins)", "metrics", {"200": "text/plain exposition", **ADMIN_ONLY}
                )
            },
            "/signin": {
                "get": _html("Sign-in page", "signin_form", {"200": "HTML form"}),
                "post": _html(
                    "Sign in with an API key (form, CSRF token required)",
                    "signin",
                    {
                        "302": "Signed in",
                        "401": "Wrong key",
                        "403": "CSRF token missing",
                        "429": "Locked out after repeated failures",
                    },
                ),
            },
            "/signout": {
                "post": _html(
                    "Sign out (CSRF token required)", "signout", {"302": "Signed out", "401": "Not signed in"}
                )
            },
            "/account": {
                "get": _html(
                    "Who is signed in (reviewers, admins)",
                    "account",
                    {"200": "HTML", "401": "Not signed in", "403": "Role too low"},
                )
            },
            "/admin/keys": {
                "get": _html("Key administration page", "keys_page", {"200": "HTML", **ADMIN_ONLY})
            },
            "/admin/keys/{key_id}/revoke": {
                "post": {
                    **_html(
                        "Revoke a key from the admin page (CSRF token required)",
                        "revoke_form",
                        {"302": "Revoked", "404": "No such key", **ADMIN_ONLY},
                    ),
                    "parameters": [KEY_ID],
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "responses": {"200": _ok("Health", "Alive")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: a signature-verified model is loaded",
                    "responses": {
                        "200": _ok("Ready", "Ready"),
                        "503": _error("The served model's files changed or vanished on disk"),
                    },
                }
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key: dgk_<id>_<secret>"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
    }
