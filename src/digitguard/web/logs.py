"""Structured JSON logs; every line written during a request carries its request id."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime

from flask import Flask, Response, g, has_request_context, request

log = logging.getLogger("digitguard.requests")
EXTRA_FIELDS = ("method", "path", "status", "duration_ms", "principal", "error")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        entry.update({name: getattr(record, name) for name in EXTRA_FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: int = logging.INFO) -> None:
    """Send every log record to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def register(app: Flask) -> None:
    @app.after_request
    def log_request(response: Response) -> Response:
        # Refusals and failures are always logged; successes only when LOG_REQUESTS is on.
        if response.status_code >= 400 or app.config["LOG_REQUESTS"]:
            started = g.get("started")
            log.log(
                logging.WARNING if response.status_code >= 400 else logging.INFO,
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1e3, 2) if started else None,
                    "principal": g.principal.key_id or "anonymous" if "principal" in g else "anonymous",
                },
            )
        return response
