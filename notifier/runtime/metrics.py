"""Prometheus metrics: queue depth by status and category, delivery and failure counters, latency.

Counters live in the process that counts; the queue depth is read from the
database at scrape time, so every process reports the same shared truth.
``serve --workers N`` runs N processes behind one port, and a scrape reaches
any one of them: there the counters are kept in files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up
by ``serve``) and every scrape reports the sum over the processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from notifier.vocabulary import FailureReason

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""Where the processes of one ``serve --workers N`` keep their counters; read by prometheus-client
when it is first imported, so it is set before the processes start."""
PHONE_SECTIONS = ("customer", "to", "order", "data", "context")
"""Where a request can carry a phone field: reported at 0 from the start."""


class Metrics:
    """One registry per engine, so tests and several engines in a process do not collide.

    ``kinds`` and ``reasons`` are the label values of the failure counters,
    reported at 0 from the start so that an alert on their rate sees the
    first failure.
    """

    def __init__(
        self,
        depth: Callable[[], Iterable[tuple[str, str, int]]],
        webhook_depth: Callable[[], Iterable[tuple[str, int]]] | None = None,
        kinds: Iterable[str] = (),
        reasons: Iterable[str] = (),
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
        self._render_failures = Counter(
            "notifier_render_failures",
            "Messages failed for good because their template could not be rendered, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self._failures = Counter(
            "notifier_failures",
            "Messages failed for good, by kind and reason (render, smtp_permanent, "
            "retries_exhausted, unexpected).",
            ["kind", "reason"],
            registry=self.registry,
        )
        self._phones = Counter(
            "notifier_phone_fields_dropped",
            "Phone-named fields dropped from requests before storage, by section "
            "(customer, order, data, context); notifier stores no phone number.",
            ["section"],
            registry=self.registry,
        )
        for section in PHONE_SECTIONS:
            self._phones.labels(section)
        reasons = list(reasons)
        for kind in kinds:
            self._render_failures.labels(kind)
            for reason in reasons:
                self._failures.labels(kind, reason)
        # The gauges read the database, so every process reports the same: registered once
        # in the scraped registry, never summed across processes.
        gauges: list[Collector] = [_QueueDepth(depth)]
        if webhook_depth is not None:
            gauges.append(_WebhookDepth(webhook_depth))
        for gauge in gauges:
            self.registry.register(gauge)
        self._scraped = self.registry
        shared = os.environ.get(MULTIPROCESS_VARIABLE)
        if shared:
            self._scraped = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scraped, shared)  # type: ignore[no-untyped-call]
            for gauge in gauges:
                self._scraped.register(gauge)

    def observe(self, category: str, outcome: str, seconds: float) -> None:
        self._deliveries.labels(category, outcome).inc()
        self._latency.labels(category).observe(seconds)

    def failed(self, kind: str, reason: str) -> None:
        """Count a message that failed for good; ``render`` also counts as a render failure."""
        self._failures.labels(kind, reason).inc()
        if reason == FailureReason.RENDER:
            self._render_failures.labels(kind).inc()

    def phone_dropped(self, section: str) -> None:
        """Count one phone-named field dropped on arrival (``notifier.phones``)."""
        self._phones.labels(section).inc()

    def observe_webhook(self, outcome: str) -> None:
        self._webhooks.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self._scraped)


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
