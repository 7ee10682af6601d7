"""End to end: events through the Python API, rendered, delivered and marked sent.

``order.placed`` events are handed to ``Notifier.handle_event`` by
``CLIENTS`` threads, as a shop backend's web workers would, while the same
engine's dispatcher delivers in this process (each accepted event wakes it).
The figure is events per second from the first event handed over until the
last of their confirmations is marked ``sent``, after an untimed warm-up
delivery (``workload.warm_up``). django-post_office's end to
end (``mail.send`` queueing with rendering, then ``send_queued``) is the
issue's comparison.
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench import events, workload
from bench.common import fresh_dir, stopwatch
from bench.sinks import Sink
from notifier.runtime import eventloop
from notifier.service import Notifier

CLIENTS = 16
POLL_SECONDS = 0.2


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
