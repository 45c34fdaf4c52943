"""Prometheus metrics of one app: requests, latency, images and digits read, errors, and digit confidence.

Each app owns its registry, so several apps (tests) never share counters. With several uvicorn
workers, set PROMETHEUS_MULTIPROC_DIR (``digitread serve --workers N`` does) and /metrics adds up
every worker's files instead of showing the one worker that happened to answer.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Match

from digitread.inference.results import Reading

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
# Dense near 1: a drift from 0.99 to 0.9 matters far more than one from 0.3 to 0.2.
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "digitread_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "digitread_http_request_duration_seconds",
            "time from request to response",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.images = Counter("digitread_images_read", "images read", registry=r)
        self.digits = Counter("digitread_digits_read", "digits read, marks not counted", registry=r)
        self.errors = Counter("digitread_errors", "requests refused or failed, by error code", ["code"], registry=r)
        self.confidence = Histogram(
            "digitread_digit_confidence",
            "calibrated confidence of every digit served; a shift shows drift in what users send",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.feedback = Counter("digitread_feedback", "corrections stored", registry=r)

    def observe_readings(self, readings: list[Reading]) -> None:
        for reading in readings:
            self.images.inc()
            for digit in reading.digits:
                if digit.char.isdigit():
                    self.digits.inc()
                    self.confidence.observe(digit.confidence)

    def exposition(self) -> tuple[bytes, str]:
        """The text /metrics serves, and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware counting every request by its route template (``/v1/read``, never raw URLs, so a
    scanner probing random paths cannot blow up the number of series)."""

    def __init__(self, app, metrics: ServiceMetrics, routes):
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route.path
        return "unmatched"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app dies before answering, that is what the client sees

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route, method = self._route(scope), scope.get("method", "")
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
            self.metrics.requests.labels(method, route, str(status)).inc()
