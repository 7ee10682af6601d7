"""Latency: from ``POST /v1/events`` to the sink's 250 for an immediate order confirmation.

The sink is ``bench.asyncio_sink`` in its own process, which writes the
monotonic time at which each probe's final ``.`` arrived; the client notes
the monotonic time just before each POST. Both clocks are CLOCK_MONOTONIC,
so the difference is the end-to-end latency an operator cares about: is
the confirmation in the customer's provider's hands within seconds?

Idle: probes alone, once a warm-up of ``WARM_UP`` due messages has been
delivered, so they meet an engine at rest rather than one whose render
processes are still booting (the first mail after a start is slower; the
loaded phase likewise waits for its first backlog mail). Under load: a
backlog of due messages is queued into the serve process's database before
it starts, and the probes are posted while that same process is delivering
it. The backlog is sized (``backlog_for``) to outlast every probe at a rate
above anything this engine reaches on two cores, and the sink says, at each
probe's arrival, how many backlog messages it had yet to receive: only
probes that arrived while some were still to come count as "under load", and
the table says how many did. (A backlog of 4,000 drained in 3 s of 8 s of
probes, so most "loaded" probes met an idle engine.) The first probe waits
until the first backlog mail is marked sent, so no probe meets an engine
still booting instead of a busy one.
Each run gets its own sink, so its counter starts at 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import events, workload
from bench.common import fresh_dir, percentile
from bench.processes import auth_headers, serving
from bench.sinks import Sink
from notifier.service import Notifier
from notifier.store.models import PENDING
from notifier.vocabulary import MessageStatus

PROBE_GAP = 0.2
"""Seconds between probes: one at a time, so each measures the path, not a queue of probes."""
DRAIN_CEILING = 3000.0
"""msg/s no serve process reaches here (the bare aiosmtplib client sends about 1,700-3,200)."""
TARGET_MS = 500.0
"""Issue 23: an immediate mail's p99 under delivery load stays below this."""
WARM_UP = 200
"""Due messages an idle run delivers before its first probe: the render processes are then up."""
UNSENT = (*PENDING, MessageStatus.SENDING)
MARGIN = 2.0
"""Seconds the backlog should last beyond the last probe's posting: its own latency."""


def backlog_for(probes: int) -> int:
    """A backlog that lasts past the last probe even if it drained at ``DRAIN_CEILING``."""
    return int(DRAIN_CEILING * (probes * PROBE_GAP + MARGIN))


@dataclass(frozen=True)
class LatencyRun:
    latencies: list[float]
    missing: int
    backlog_at_start: int
    backlog_after_probes: int
    backlog_at_probe: list[int]
    """Per probe, in posting order: backlog messages the sink had yet to receive when it arrived."""
    loaded: list[float]
    """Latencies of the probes that arrived while some of the backlog was still to come."""

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def loaded_p50(self) -> float:
        return percentile(self.loaded, 0.5) if self.loaded else float("nan")

    @property
    def loaded_p99(self) -> float:
        return percentile(self.loaded, 0.99) if self.loaded else float("nan")


def run(sink: Sink, probes: int, backlog: int, tag: str, wait: float = 600) -> LatencyRun:
    """Probes under ``backlog`` due messages, or (with none) at rest after ``WARM_UP`` of them."""
    folder = fresh_dir(f"latency-{tag}")
    url = workload.sqlite_url(folder)
    queued = backlog or WARM_UP
    engine = Notifier(workload.settings(url, sink.port))
    engine.upgrade_database()
    workload.queue_due(engine, queued, prefix="backlog")
    engine.close()
    database = folder / "notifier.db"
    posted: dict[str, float] = {}
    with serving(folder, url, sink.port) as base:
        # Loaded: until the first backlog mail is sent; idle: until the whole warm-up is.
        _wait_until_pending_below(database, backlog or 1, wait)
        with httpx.Client(base_url=base, headers=auth_headers(), timeout=30) as client:
            for number in range(probes):
                recipient = f"probe-{tag}-{number}@example.nl"
                body = events.order_placed(number, email=recipient, customer_id=f"P-{tag}-{number}")
                posted[recipient] = time.monotonic()
                response = client.post("/v1/events", json=body)
                response.raise_for_status()
                time.sleep(PROBE_GAP)
        after_probes = workload.count_in(database, *UNSENT) if database.exists() else 0
        deadline = time.monotonic() + wait
        arrived = sink.probe_log()
        while len(set(posted) & set(arrived)) < len(posted) and time.monotonic() < deadline:
            time.sleep(0.2)
            arrived = sink.probe_log()
    latencies = [arrived[r][0] - t for r, t in posted.items() if r in arrived]
    left = [max(0, backlog - arrived[r][1]) for r in posted if r in arrived]
    loaded = [
        arrived[r][0] - t for r, t in posted.items() if r in arrived and arrived[r][1] < backlog
    ]
    return LatencyRun(latencies, len(posted) - len(latencies), backlog, after_probes, left, loaded)


def _wait_until_pending_below(database: Path, limit: int, wait: float) -> None:
    """Return once fewer than ``limit`` messages are still to send (or after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while workload.count_in(database, *UNSENT) >= limit and time.monotonic() < deadline:
        time.sleep(0.05)
