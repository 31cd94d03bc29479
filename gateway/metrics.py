"""Prometheus metrics of one gateway app (its own registry, so several apps in one process stay apart)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Synthesis on a CPU takes seconds; the buckets span the gateway's own sub-millisecond paths up to the
# default 60 s timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
UNMATCHED_ROUTE = "unmatched"  # 404s keep their own label instead of one series per probed URL


class GatewayMetrics:
    """Requests by route/method/status, a latency histogram per route, seconds of audio produced."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gsv_gateway_requests",
            "HTTP requests by route template, method and status code",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "gsv_gateway_request_duration_seconds",
            "Time from request start to the end of the response, by route template",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "gsv_gateway_audio_seconds",
            "Seconds of audio returned to clients",
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def add_audio(self, seconds: float) -> None:
        self.audio_seconds.inc(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
