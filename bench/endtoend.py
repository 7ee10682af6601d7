"""End to end: events accepted, rendered, delivered and marked sent.

``run``: ``order.placed`` events are handed to ``Notifier.handle_event`` by
``CLIENTS`` threads, as a shop backend's web workers would, while the same
engine's dispatcher delivers in this process (each accepted event wakes it),
after an untimed warm-up delivery (``workload.warm_up``). django-post_office's
end to end (``mail.send`` queueing with rendering, then ``send_queued``) is
its comparison.

``run_http``: the same events through ``POST /v1/events`` from ``CLIENTS``
keep-alive connections (``bench.enqueue``'s client) to ``notifier serve``,
which accepts and delivers them, after an untimed warm-up of
``enqueue.WARMUP`` events delivered; the issue's figure (against the bare
aiosmtplib client).

Both figures are events per second from the first event handed over until
the last of their confirmations is marked ``sent``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import enqueue, events, httpclient, workload
from bench.common import fresh_dir, stopwatch
from bench.processes import serving
from bench.sinks import Sink
from notifier.runtime import eventloop
from notifier.service import Notifier
from notifier.vocabulary import MessageStatus

CLIENTS = 16
POLL_SECONDS = 0.2
HTTP_WAIT_SECONDS = 600.0
"""How long ``run_http`` waits for the last confirmation before it gives up."""


@dataclass(frozen=True)
class EndToEndRun:
    count: int
    seconds: float
    enqueue_seconds: float
    """When the last event had been accepted: the rest of the time is delivery catching up."""

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def run(sink: Sink, count: int) -> EndToEndRun:
    folder = fresh_dir("end-to-end")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    engine.upgrade_database()
    try:
        return eventloop.run(_run(engine, count))
    finally:
        engine.close()


async def _run(engine: Notifier, count: int) -> EndToEndRun:
    await engine.start()
    await workload.warm_up(engine)
    bodies = [events.order_placed(index) for index in range(count)]
    numbers = itertools.count()
    try:
        with ThreadPoolExecutor(CLIENTS) as clients, stopwatch() as elapsed:

            def client() -> None:
                while (index := next(numbers)) < count:
                    engine.handle_event(bodies[index])

            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(clients, client) for _ in range(CLIENTS)))
            enqueued = elapsed()
            target = count + workload.WARM_UP
            while (await asyncio.to_thread(workload.count_sent, engine)).get("sent", 0) < target:
                await asyncio.sleep(POLL_SECONDS)
            seconds = elapsed()
    finally:
        await engine.stop()
    return EndToEndRun(count, seconds, enqueued)


def run_http(sink: Sink, count: int) -> EndToEndRun:
    """``count`` events through ``POST /v1/events`` to a fresh ``notifier serve``, until sent."""
    folder = fresh_dir("end-to-end-http")
    with serving(folder, workload.sqlite_url(folder), sink.port) as base:
        return asyncio.run(_run_http(base, folder / "notifier.db", count))


async def _run_http(url: str, database: Path, count: int) -> EndToEndRun:
    requests = enqueue.Requests(url, events.order_placed)
    requests.prepare(enqueue.WARMUP + count)
    connections = [httpclient.Connection.to(url) for _ in range(CLIENTS)]
    try:
        warm = await enqueue.window(connections, requests, stop_after=enqueue.WARMUP)
        await _until_sent(database, warm.accepted)
        with stopwatch() as elapsed:
            posted = await enqueue.window(connections, requests, stop_after=count)
            enqueued = elapsed()
            await _until_sent(database, warm.accepted + posted.accepted)
            seconds = elapsed()
    finally:
        for connection in connections:
            connection.close()
    if posted.errors:
        raise RuntimeError(f"{posted.errors} events were refused or failed")
    return EndToEndRun(posted.accepted, seconds, enqueued)


async def _until_sent(database: Path, target: int) -> None:
    deadline = time.monotonic() + HTTP_WAIT_SECONDS
    while await asyncio.to_thread(workload.count_in, database, MessageStatus.SENT) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {target} messages sent in {HTTP_WAIT_SECONDS:.0f} s")
        await asyncio.sleep(POLL_SECONDS)
