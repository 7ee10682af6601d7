"""Prometheus metrics: queue depth by status and category, sent/failed counters, send latency.

Counters live in this process; the queue depth is read from the database at
scrape time, so every process reports the same shared truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One registry per engine, so tests and several engines in a process do not collide."""

    def __init__(
        self,
        depth: Callable[[], Iterable[tuple[str, str, int]]],
        webhook_depth: Callable[[], Iterable[tuple[str, int]]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self._webhooks = Counter(
            "notifier_webhook_deliveries",
            "Webhook tries by outcome (delivered, retrying, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self._deliveries = Counter(
            "notifier_deliveries",
            "Delivery attempts by category and outcome (sent, failed: includes retried).",
            ["category", "outcome"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "notifier_send_seconds",
            "Time from handing a message to the SMTP server to its reply.",
            ["category"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.registry.register(_QueueDepth(depth))
        if webhook_depth is not None:
            self.registry.register(_WebhookDepth(webhook_depth))

    def observe(self, category: str, outcome: str, seconds: float) -> None:
        self._deliveries.labels(category, outcome).inc()
        self._latency.labels(category).observe(seconds)

    def observe_webhook(self, outcome: str) -> None:
        self._webhooks.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _QueueDepth(Collector):
    def __init__(self, depth: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self._depth = depth

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "notifier_messages",
            "Messages in the outbox by status and category.",
            labels=["status", "category"],
        )
        for status, category, count in self._depth():
            gauge.add_metric([status, category], count)
        yield gauge


class _WebhookDepth(Collector):
    def __init__(self, depth: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self._depth = depth

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "notifier_webhook_events", "Webhook events by status.", labels=["status"]
        )
        for status, count in self._depth():
            gauge.add_metric([status], count)
        yield gauge
