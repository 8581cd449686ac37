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
        "properties": {"pixels": {**GRID, "description": "28x28 numbers in [0, 1], ink = 1, used as is"}},
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
                        "415": _error("Unsupported content type"),
                        "422": _error("Nothing drawn, or pixels of the wrong shape or range"),
                    },
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
                    "responses": {"200": _ok("Ready", "Ready"), "503": _error("No verified model")},
                }
            },
        },
        "components": {"schemas": SCHEMAS},
    }
