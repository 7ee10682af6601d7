"""Enqueue: events per second accepted through ``POST /v1/events`` and through the Python API.

HTTP: ``notifier serve`` as a subprocess on SQLite, 16 concurrent clients
(16 keep-alive connections of ``bench.httpclient``, one task each) posting
``order.placed`` for a fixed time. The serve process is also delivering the
confirmations it accepts to the sink meanwhile (each enqueue wakes the
sender), as in production; the client runs on the same two cores, so it
sends requests encoded before the first window and spends about 0.1 ms of
CPU on each (httpx spent about 3 ms and capped the figure near 300/s by
itself). Python API: ``engine.handle_event`` in a loop in this process with
no sender running, i.e. the enqueue work alone; ``run_python(..., threads=16)``
calls it from 16 threads at once, so concurrent events share a commit as they
do behind the HTTP API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import events, httpclient, workload
from bench.common import fresh_dir, percentile
from bench.processes import auth_headers, serving
from bench.sinks import Sink
from notifier.service import Notifier

CLIENTS = 16
WARMUP = 200
PREPARED_RATE = 3000
"""Requests encoded ahead per second of window; beyond that they are encoded on the fly."""


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
    sink: Sink,
    duration: float,
    runs: int,
    body: Body = events.order_placed,
    *,
    database_url: str | None = None,
    workers: int = 1,
) -> list[HttpRun]:
    """``runs`` windows of ``duration`` seconds against ``serve --workers N`` (after a warm-up).

    The database is a fresh SQLite file unless ``database_url`` names a migrated one.
    """
    folder = fresh_dir(f"enqueue-http-{workers}")
    url = database_url or workload.sqlite_url(folder)
    with serving(folder, url, sink.port, workers=workers) as base:
        return asyncio.run(_windows(base, duration, runs, body))


class Requests:
    """``POST /v1/events`` requests as bytes, each with a fresh event, mostly encoded ahead."""

    def __init__(self, url: str, body: Body) -> None:
        self._url = f"{url}/v1/events"
        self._headers = auth_headers() | {"Content-Type": "application/json"}
        self._body = body
        self._numbers = itertools.count()
        self._ready: deque[bytes] = deque()

    def prepare(self, count: int) -> None:
        self._ready.extend(self._encode() for _ in range(count))

    def next(self) -> bytes:
        return self._ready.popleft() if self._ready else self._encode()

    def _encode(self) -> bytes:
        body = json.dumps(self._body(next(self._numbers))).encode()
        return httpclient.encode_request("POST", self._url, self._headers, body)


async def _windows(url: str, duration: float, runs: int, body: Body) -> list[HttpRun]:
    requests = Requests(url, body)
    requests.prepare(WARMUP + int(runs * duration * PREPARED_RATE))
    connections = [httpclient.Connection.to(url) for _ in range(CLIENTS)]
    try:
        await window(connections, requests, stop_after=WARMUP)
        return [await window(connections, requests, duration=duration) for _ in range(runs)]
    finally:
        for connection in connections:
            connection.close()


async def window(
    connections: list[httpclient.Connection],
    requests: Requests,
    *,
    duration: float | None = None,
    stop_after: int | None = None,
) -> HttpRun:
    """POST from every connection at once until ``duration`` has passed or ``stop_after`` are
    accepted (a few more may be, by the connections already waiting for an answer)."""
    latencies: list[float] = []
    failures = [0]
    start = time.perf_counter()
    deadline = start + (duration or 1e9)

    async def poster(connection: httpclient.Connection) -> None:
        while time.perf_counter() < deadline and (
            stop_after is None or len(latencies) < stop_after
        ):
            raw = requests.next()
            sent = time.perf_counter()
            try:
                response = await connection.request(raw)
            except httpclient.ProtocolError:
                failures[0] += 1
                continue
            if response.status == 202:
                latencies.append(time.perf_counter() - sent)
            else:
                failures[0] += 1

    await asyncio.gather(*(poster(connection) for connection in connections))
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
