"""Enqueue: events per second accepted through ``POST /v1/events`` and through the Python API.

HTTP: ``notifier serve`` as a subprocess on SQLite, 16 concurrent clients
(one httpx.AsyncClient, 16 tasks) posting ``order.placed`` for a fixed
time. The serve process is also delivering the confirmations it accepts to
the sink meanwhile (each enqueue wakes the sender), as in production; the
client runs on the same two cores. Python API: ``engine.handle_event`` in a
loop in this process with no sender running, i.e. the enqueue work alone;
``run_python(..., threads=16)`` calls it from 16 threads at once, so
concurrent events share a commit as they do behind the HTTP API.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench import events, workload
from bench.common import fresh_dir, percentile
from bench.processes import auth_headers, serving
from bench.sinks import Sink
from notifier.service import Notifier

CLIENTS = 16
WARMUP = 200


@dataclass(frozen=True)
class HttpRun:
    accepted: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


Body = Callable[[int], dict[str, Any]]


def run_http(
    sink: Sink, duration: float, runs: int, body: Body = events.order_placed
) -> list[HttpRun]:
    """``runs`` windows of ``duration`` seconds against one serve process (after a warm-up)."""
    folder = fresh_dir("enqueue-http")
    with serving(folder, workload.sqlite_url(folder), sink.port) as url:
        return asyncio.run(_windows(url, duration, runs, body))


async def _windows(url: str, duration: float, runs: int, body: Body) -> list[HttpRun]:
    counter = itertools.count()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=url, headers=auth_headers(), limits=limits, timeout=30
    ) as client:
        await _window(client, counter, body, stop_after=WARMUP)
        return [await _window(client, counter, body, duration=duration) for _ in range(runs)]


async def _window(
    client: httpx.AsyncClient,
    counter: itertools.count[int],
    body: Body,
    *,
    duration: float | None = None,
    stop_after: int | None = None,
) -> HttpRun:
    latencies: list[float] = []
    failures = [0]
    start = time.perf_counter()
    deadline = start + (duration or 1e9)

    async def poster() -> None:
        while time.perf_counter() < deadline and (
            stop_after is None or len(latencies) < stop_after
        ):
            event = body(next(counter))
            sent = time.perf_counter()
            response = await client.post("/v1/events", json=event)
            if response.status_code == 202:
                latencies.append(time.perf_counter() - sent)
            else:
                failures[0] += 1

    await asyncio.gather(*(poster() for _ in range(CLIENTS)))
    seconds = time.perf_counter() - start
    return HttpRun(
        len(latencies),
        failures[0],
        seconds,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
    )


def run_python(sink: Sink, duration: float, threads: int = 1) -> float:
    """Events/s through ``Notifier.handle_event`` for ``duration`` seconds.

    With ``threads`` > 1 that many threads call it concurrently, as the
    HTTP threadpool does, so their events are committed together.
    """
    folder = fresh_dir("enqueue-python")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    engine.upgrade_database()
    try:
        for index in range(WARMUP):
            engine.handle_event(events.order_placed(index))
        numbers = itertools.count(WARMUP)
        lock = threading.Lock()
        done = [0]
        start = time.perf_counter()
        deadline = start + duration

        def loop() -> None:
            while time.perf_counter() < deadline:
                with lock:
                    body = events.order_placed(next(numbers))
                engine.handle_event(body)
                with lock:
                    done[0] += 1

        workers = [threading.Thread(target=loop) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return done[0] / (time.perf_counter() - start)
    finally:
        engine.close()
