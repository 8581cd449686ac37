"""Prometheus metrics, served to admins at ``/metrics``.

Each app has its own registry. Under gunicorn, ``digitguard serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` so that every worker's counts are collected together.
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

blueprint = Blueprint("metrics", __name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, model_sha256: str, model_name: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "digitguard_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "digitguard_request_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "digitguard_predictions", "Predictions by outcome", ["outcome"], registry=self.registry
        )
        self.refusals = Counter(
            "digitguard_rate_limited",
            "Requests refused by a rate limit or quota",
            ["route"],
            registry=self.registry,
        )
        self.model = Gauge(
            "digitguard_model_info",
            "The served model",
            ["model_sha256", "name"],
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.model.labels(model_sha256, model_name).set(1)

    def rate_limited(self, endpoint: str | None) -> None:
        self.refusals.labels(endpoint or "unknown").inc()

    def prediction(self, abstained: bool) -> None:
        self.predictions.labels("abstained" if abstained else "answered").inc()

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


@blueprint.get("/metrics")
def metrics():
    return Response(current_app.extensions["digitguard.metrics"].exposition(), mimetype=CONTENT_TYPE_LATEST)


def register(app: Flask, metrics_: Metrics) -> None:
    app.extensions["digitguard.metrics"] = metrics_

    @app.before_request
    def start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observe(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics_.requests.labels(route, request.method, str(response.status_code)).inc()
        if "started" in g:
            metrics_.latency.labels(route).observe(time.perf_counter() - g.started)
        return response
