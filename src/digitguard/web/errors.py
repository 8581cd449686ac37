"""Every error leaves as JSON with a stable ``error`` code — never a stack trace."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

from flask import Flask, g, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItem
from werkzeug.exceptions import ClientDisconnected, HTTPException

from digitguard.db import UNAVAILABLE
from digitguard.errors import ImageDecodeError, InputError, InvalidPixelsError, NothingDrawnError

log = logging.getLogger(__name__)

INPUT_ERROR_STATUS: dict[type[InputError], int] = {
    ImageDecodeError: 400,
    NothingDrawnError: 422,
    InvalidPixelsError: 422,
}

# A refusal that is an answer to the drawing (rather than to a malformed request) also carries the
# ``reason``/``reason_text`` pair of a prediction's abstention, so a client switches on one field.
INPUT_REASON_TEXT: dict[type[InputError], str] = {
    NothingDrawnError: "nothing was drawn",
}

HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error with an explicit status and code, raised by the adapters."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after_s = status, code, message, retry_after_s


class RateLimitedError(Exception):
    """A request went past one of its limits; ``retry_after_s`` is when that window resets."""

    def __init__(self, limit: RateLimitItem, retry_after_s: int) -> None:
        super().__init__(f"rate limit exceeded: {limit}")
        self.limit = limit
        self.retry_after_s = retry_after_s


def error_response(
    status: int,
    code: str,
    message: str,
    retry_after_s: int | None = None,
    extra: Mapping[str, object] | None = None,
):
    body: dict[str, object] = {"error": code, "message": message, **(extra or {})}
    if getattr(g, "request_id", None):
        body["request_id"] = g.request_id
    response = jsonify(body)
    response.status_code = status
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(max(1, int(retry_after_s)))
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.retry_after_s)

    @app.errorhandler(InputError)
    def input_error(exc: InputError):
        text = INPUT_REASON_TEXT.get(type(exc))
        extra = {"reason": exc.code, "reason_text": text} if text is not None else None
        return error_response(INPUT_ERROR_STATUS.get(type(exc), 422), exc.code, str(exc), extra=extra)

    @app.errorhandler(RateLimitedError)
    def over_a_limit(exc: RateLimitedError):
        app.extensions["digitguard.metrics"].rate_limited(request.endpoint)
        return error_response(429, "rate_limited", str(exc), exc.retry_after_s)

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        app.extensions["digitguard.metrics"].rate_limited(request.endpoint)
        current = app.extensions["digitguard.limiter"].current_limit
        retry_after = math.ceil(current.reset_at - time.time()) if current else 60
        return error_response(429, "rate_limited", f"rate limit exceeded: {exc.description}", retry_after)

    @app.errorhandler(TimeoutError)
    @app.errorhandler(ClientDisconnected)
    def body_timeout(exc: Exception):
        # Werkzeug turns a read that timed out (BODY_READ_TIMEOUT_S) into ClientDisconnected.
        return error_response(408, "request_timeout", "the request body did not arrive in time")

    def database_unavailable(exc: Exception):
        # Keys, sessions and lock-outs cannot be checked: refuse (fail closed), and say it is transient.
        log.error("database unavailable: %s", exc)
        return error_response(
            503, "database_unavailable", "the database is unavailable; retry shortly", retry_after_s=1
        )

    for error in UNAVAILABLE:
        app.register_error_handler(error, database_unavailable)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        return error_response(status, HTTP_ERROR_CODES.get(status, f"http_{status}"), exc.description or "")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "the server failed to handle this request")
