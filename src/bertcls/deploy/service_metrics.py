"""``/metrics`` of ``bertcls serve``, with prometheus_client: one registry per app (tests don't collide).

Every label value comes from a fixed set, so no client can grow the number of series: the endpoint is
the matched route's template (``other`` when none matches) and the method one of the standard HTTP
methods (``other`` for anything a client makes up); status codes are three digits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from starlette.routing import Match

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
OTHER = "other"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER


def endpoint_label(scope: dict, routes: Iterable[Any]) -> str:
    """The template of the route the request matches (fully, or by path only: a 405), else ``other``."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return getattr(route, "path", OTHER)
    return OTHER


class ServiceMetrics:
    """The service's counters, histograms and gauges, in a registry of their own."""

    def __init__(self, info: dict[str, str], queued: Callable[[], int]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "bertcls_requests",
            "HTTP requests by endpoint (route template), method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "bertcls_request_duration_seconds",
            "Time from request to response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "bertcls_batch_size", "Texts per model call (micro-batches).", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "bertcls_batch_seconds", "Model time per micro-batch.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.texts = Counter("bertcls_texts", "Texts classified.", registry=r)
        self.failed_batches = Counter(
            "bertcls_failed_batches",
            "Micro-batches whose model call raised and were retried request by request.",
            registry=r,
        )
        self.rejected_busy = Counter(
            "bertcls_rejected_busy", "Requests refused with 503 because the queue was full.", registry=r
        )
        queue = Gauge("bertcls_queue_texts", "Texts waiting for the model.", registry=r)
        queue.set_function(queued)
        Info("bertcls_model", "The model being served.", registry=r).info(info)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """``endpoint`` and ``method`` must already be bounded (see endpoint_label, method_label)."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.texts.inc(size)

    def observe_failed_batch(self) -> None:
        self.failed_batches.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
