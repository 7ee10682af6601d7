"""Latency: from ``POST /v1/events`` to the sink's 250 for an immediate order confirmation.

The sink is ``bench.asyncio_sink`` in its own process, which writes the
monotonic time at which each probe's final ``.`` arrived; the client notes
the monotonic time just before each POST. Both clocks are CLOCK_MONOTONIC,
so the difference is the end-to-end latency an operator cares about: is
the confirmation in the customer's provider's hands within seconds?

Idle: probes alone. Under load: a backlog of due messages is queued into the
serve process's database before it starts, and the probes are posted while
that same process is delivering it. The backlog still pending when the last
probe was posted is reported, so a reader can tell the load was real.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import events, workload
from bench.common import fresh_dir, percentile
from bench.processes import auth_headers, serving
from bench.sinks import Sink
from notifier.service import Notifier

PROBE_GAP = 0.2
"""Seconds between probes: one at a time, so each measures the path, not a queue of probes."""


@dataclass(frozen=True)
class LatencyRun:
    latencies: list[float]
    missing: int
    backlog_at_start: int
    backlog_after_probes: int

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)


def run(sink: Sink, probes: int, backlog: int, tag: str, wait: float = 600) -> LatencyRun:
    folder = fresh_dir(f"latency-{tag}")
    url = workload.sqlite_url(folder)
    if backlog:
        engine = Notifier(workload.settings(url, sink.port))
        engine.upgrade_database()
        workload.queue_due(engine, backlog, prefix="backlog")
        engine.close()
    database = folder / "notifier.db"
    posted: dict[str, float] = {}
    with serving(folder, url, sink.port) as base:
        with httpx.Client(base_url=base, headers=auth_headers(), timeout=30) as client:
            for number in range(probes):
                recipient = f"probe-{tag}-{number}@example.nl"
                body = events.order_placed(number, email=recipient, customer_id=f"P-{tag}-{number}")
                posted[recipient] = time.monotonic()
                response = client.post("/v1/events", json=body)
                response.raise_for_status()
                time.sleep(PROBE_GAP)
        after_probes = _pending(database) if database.exists() else 0
        deadline = time.monotonic() + wait
        arrived = sink.arrivals()
        while len(set(posted) & set(arrived)) < len(posted) and time.monotonic() < deadline:
            time.sleep(0.2)
            arrived = sink.arrivals()
    latencies = [arrived[r] - t for r, t in posted.items() if r in arrived]
    return LatencyRun(latencies, len(posted) - len(latencies), backlog, after_probes)


def _pending(database: Path) -> int:
    """Messages still scheduled or sending, read-only so the serve process is not disturbed."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        row = connection.execute(
            "SELECT count(*) FROM messages WHERE status IN ('scheduled', 'sending', 'retrying')"
        ).fetchone()
    return int(row[0])
