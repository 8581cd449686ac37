"""The OpenAPI 3.1 description of the JSON API (tests validate real responses against it)."""

from __future__ import annotations

from typing import Any

import digitguard
from digitguard.errors import NothingDrawnError
from digitguard.inference.predictor import ABSTENTION_TEXT, Abstention
from digitguard.web.errors import INPUT_REASON_TEXT

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
PIXELS_GRID = {
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
}
SHA256_OR_NULL = {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}
ABSTENTION_REASON = {
    "enum": [*(reason.value for reason in Abstention), None],
    "description": "why the decision gave no digit, checked in this order (the first that holds wins); "
    "null when it answered",
}
ABSTENTION_REASON_TEXT = {
    "enum": [*ABSTENTION_TEXT.values(), None],
    "description": "the reason in the words the page and the review queue show; null when it answered",
}
LABEL = {
    "oneOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"const": "not_a_digit"}],
    "description": "the true digit, or not_a_digit for inputs that must not become training data",
}

SCHEMAS: dict[str, Any] = {
    "Prediction": {
        "type": "object",
        "required": [
            "digit",
            "probabilities",
            "confidence",
            "abstained",
            "abstain_below",
            "flagged_adversarial",
            "detector_score",
            "flagged_trigger",
            "trigger_score",
            "reason",
            "reason_text",
            "model_sha256",
            "gate_sha256",
            "request_id",
        ],
        "additionalProperties": False,
        # An abstention always says why; an answer never carries a reason.
        "if": {"properties": {"abstained": {"const": True}}},
        "then": {"properties": {"reason": {"type": "string"}, "reason_text": {"type": "string"}}},
        "else": {"properties": {"reason": {"type": "null"}, "reason_text": {"type": "null"}}},
        "properties": {
            "digit": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": 9,
                "description": "null when abstaining",
            },
            "probabilities": {
                "oneOf": [PROBABILITIES, {"type": "null"}],
                "description": "null in the top1 response mode",
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "abstained": {"type": "boolean"},
            "response_mode": {
                "enum": ["rounded", "top1"],
                "description": "present when the caller's answers are reduced (RESPONSE_MODE); absent: full",
            },
            "abstain_below": {"type": "number", "minimum": 0, "maximum": 1},
            "flagged_adversarial": {
                "type": "boolean",
                "description": "the adversarial-input detector fired: an abstention whatever the confidence",
            },
            "detector_score": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 2,
                "description": "feature-squeezing score (L1 distance of probabilities); null: no detector",
            },
            "flagged_trigger": {
                "type": "boolean",
                "description": "the backdoor-trigger detector fired (the input may carry a trigger): "
                "an abstention whatever the confidence",
            },
            "trigger_score": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 1,
                "description": "the trigger detector's suspicion (patch occlusion: how much the answer "
                "rests on one small patch; STRIP: 1 − entropy/ln 10 of the answers on blends with clean "
                "digits); null: no trigger detector",
            },
            "reason": ABSTENTION_REASON,
            "reason_text": ABSTENTION_REASON_TEXT,
            "model_sha256": SHA256,
            "gate_sha256": {
                **SHA256_OR_NULL,
                "description": "the gate model's weights (a second model that must agree, and can say "
                "not_a_digit); null when none serves",
            },
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
            "reason": {
                "enum": [error.code for error in INPUT_REASON_TEXT],
                "description": "with nothing_drawn: the same field a prediction's abstention carries",
            },
            "reason_text": {"enum": list(INPUT_REASON_TEXT.values())},
        },
        "if": {"properties": {"error": {"const": NothingDrawnError.code}}, "required": ["error"]},
        "then": {
            "required": ["reason", "reason_text"],
            "properties": {
                "reason": {"const": NothingDrawnError.code},
                "reason_text": {"const": INPUT_REASON_TEXT[NothingDrawnError]},
            },
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
    "FlagRequest": {
        "type": "object",
        "required": ["pixels"],
        "properties": {
            "pixels": {
                **PIXELS_GRID,
                "description": "the 28x28 input the prediction returned with ?details=1 (or the pixels sent)",
            },
            "label": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": 9,
                "description": "the digit the user says is right (shown to reviewers; unverified)",
            },
        },
    },
    "Flagged": {
        "type": "object",
        "required": ["request_id", "reason", "status", "suggested_label"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "reason": {"const": "flagged"},
            "status": {"const": "pending"},
            "suggested_label": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
        },
    },
    "ReviewItem": {
        "type": "object",
        "required": [
            "id",
            "request_id",
            "created_at",
            "reason",
            "abstention_reason",
            "abstention_text",
            "status",
            "input",
            "input_sha256",
            "model_sha256",
            "digit",
            "probabilities",
            "confidence",
            "suggested_label",
            "label",
            "reviewer",
            "reviewed_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "request_id": {"type": "string"},
            "created_at": {"type": "string"},
            "reason": {"enum": ["abstained", "flagged"]},
            "abstention_reason": {
                **ABSTENTION_REASON,
                "description": "why the model abstained; null for a flag, or an abstention queued "
                "before the reason was kept",
            },
            "abstention_text": {**ABSTENTION_REASON_TEXT, "description": "the same in words"},
            "status": {"enum": ["pending", "labelled", "not_a_digit"]},
            "input": {
                "type": "array",
                "minItems": 28,
                "maxItems": 28,
                "items": {
                    "type": "array",
                    "minItems": 28,
                    "maxItems": 28,
                    "items": {"type": "integer", "minimum": 0, "maximum": 255},
                },
                "description": "the 28x28 model input as bytes, ink = 255 (as in MNIST)",
            },
            "input_sha256": {**SHA256, "description": "SHA-256 of the 784 input bytes, row by row"},
            "model_sha256": SHA256,
            "digit": {"type": ["integer", "null"], "minimum": 0, "maximum": 9, "description": "the answer"},
            "probabilities": PROBABILITIES,
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "suggested_label": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
            "label": {
                "oneOf": [LABEL, {"type": "null"}],
                "description": "the reviewer's; null while pending",
            },
            "reviewer": {"type": ["string", "null"]},
            "reviewed_at": {"type": ["string", "null"]},
        },
    },
    "ReviewItemList": {
        "type": "object",
        "required": ["items", "status", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/ReviewItem"}},
            "status": {"enum": ["pending", "labelled", "not_a_digit"]},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "ReviewDecision": {
        "type": "object",
        "required": ["label"],
        "properties": {"label": LABEL},
    },
    "ReviewDecided": {
        "type": "object",
        "required": ["item"],
        "properties": {"item": {"$ref": "#/components/schemas/ReviewItem"}},
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
            "gate_sha256": {**SHA256_OR_NULL, "description": "the gate model's weights; null: no gate"},
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
REVIEWERS_ONLY = {"401": "Not signed in", "403": "Role too low (reviewers and admins), or CSRF token missing"}
ITEM_ID = {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
REQUEST_ID = {
    "name": "request_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "description": "the request_id of the prediction",
}
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


def _reviewer_json(operation: str, summary: str, ok: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    document = _admin_json(operation, summary, ok, **extra)
    document["responses"]["403"] = _error("Role too low (reviewers and admins), or CSRF token missing")
    document["responses"]["503"] = _error("The review queue's database is unavailable; see Retry-After")
    return document


def _review_paths() -> dict[str, Any]:
    json_body = {"required": True, "content": {"application/json": {"schema": {}}}}
    return {
        "/api/v1/predictions/{request_id}/flag": {
            "post": {
                "operationId": "flag",
                "summary": "Flag an answer you received as wrong: it enters the human review queue",
                "parameters": [REQUEST_ID],
                "requestBody": {
                    **json_body,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FlagRequest"}}},
                },
                "responses": {
                    "201": _ok("Flagged", "Queued for review"),
                    "400": _error("Malformed JSON or pixels missing"),
                    "401": _error("Anonymous use is switched off, or the key is invalid or revoked"),
                    "403": _error("CSRF token missing (signed-in browser sessions)"),
                    "404": _error("No prediction with this request id was answered to this caller"),
                    "409": _error("Already in the review queue (one entry per prediction)"),
                    "413": _error("Body too large"),
                    "415": _error("Not application/json"),
                    "422": _error("Invalid pixels or label, or not the input this prediction answered"),
                    "429": _error("Rate limit or daily quota exceeded; see Retry-After"),
                    "503": _error("The audit trail or the queue is unavailable; see Retry-After"),
                },
                "security": [{}, {"bearer": []}, {"session": []}],
            }
        },
        "/api/v1/review/items": {
            "get": _reviewer_json(
                "review_items",
                "List review items, newest first",
                ("200", "ReviewItemList", "One page of items"),
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["pending", "labelled", "not_a_digit"]},
                    },
                    {
                        "name": "page",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000000},
                    },
                    {
                        "name": "per_page",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ],
                responses={"400": _error("Unknown status, or page/per_page out of range")},
            )
        },
        "/api/v1/review/items/{item_id}": {
            "post": _reviewer_json(
                "review_decide",
                "Record the true label of a pending item (audited; final)",
                ("200", "ReviewDecided", "The decided item"),
                parameters=[ITEM_ID],
                requestBody={
                    **json_body,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ReviewDecision"}}
                    },
                },
                responses={
                    "400": _error("Malformed JSON or label missing"),
                    "404": _error("No such item"),
                    "409": _error("Already decided"),
                    "415": _error("Not application/json"),
                    "422": _error("Not a digit 0-9 or not_a_digit"),
                },
            )
        },
        "/review": {
            "get": {
                **_html(
                    "The review queue (reviewers, admins)",
                    "review_queue_page",
                    {"200": "HTML", "400": "page out of range", **REVIEWERS_ONLY},
                ),
                "parameters": [
                    {
                        "name": "page",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
            }
        },
        "/review/{item_id}": {
            "get": {
                **_html(
                    "One review item: the input, the answer, the probabilities, the label form",
                    "review_item_page",
                    {"200": "HTML", "404": "No such item", **REVIEWERS_ONLY},
                ),
                "parameters": [ITEM_ID],
            },
            "post": {
                **_html(
                    "Record the true label from the page (form field label, CSRF token required)",
                    "review_decide_form",
                    {
                        "302": "Recorded",
                        "404": "No such item",
                        "409": "Already decided",
                        "422": "Not a digit 0-9 or not_a_digit",
                        **REVIEWERS_ONLY,
                    },
                ),
                "parameters": [ITEM_ID],
            },
        },
        "/review/{item_id}/input.png": {
            "get": {
                **_html(
                    "The item's 28x28 input as a PNG (ink white, as in MNIST)",
                    "review_input_png",
                    {"200": "image/png", "404": "No such item", **REVIEWERS_ONLY},
                ),
                "parameters": [ITEM_ID],
            }
        },
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
                        "422": _error(
                            "Nothing drawn (error and reason nothing_drawn, with reason_text), or pixels "
                            "of the wrong shape or range"
                        ),
                        "429": _error(
                            "Rate limit or daily quota exceeded, or extraction_suspected (the caller's "
                            "queries look like a model-extraction attack: paused); see Retry-After"
                        ),
                        "503": _error(
                            "overloaded, inference_timeout, audit_unavailable (the decision could not be "
                            "recorded, so it is not returned), database_unavailable (keys cannot be "
                            "checked) or limits_unavailable (the rate-limit store cannot be reached); "
                            "see Retry-After"
                        ),
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
            "/security": {
                "get": _html(
                    "The threat-model report for this running app and its served model (reviewers, admins)",
                    "security_page",
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
            **_review_paths(),
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
