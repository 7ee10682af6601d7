"""Delivery: due messages from SQLite to the sink through the real engine, in-process.

The figure is messages per second from the first ``dispatch_due`` until the
outbox holds no due mail, counted as ``sent`` rows in the database (not as
sends attempted). Baselines from the same run, against the same sink:

* aiosmtplib pushing pre-built bytes of the same mix over the same number of
  persistent connections: the ceiling for an asyncio sender in Python, so the
  gap to it is what claiming, rendering and recording cost;
* ``smtp-source`` (C) with the same session count and mean message size: the
  ceiling of the sink and the loopback itself;
* django-post_office (see ``bench.postoffice``), the issue's reference.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosmtplib

from bench import workload
from bench.common import cpu_seconds, fresh_dir, spawned_children, stopwatch
from bench.sinks import Sink
from notifier.mail import compose
from notifier.recipient import Recipient
from notifier.runtime import eventloop
from notifier.service import Notifier

_T = TypeVar("_T")
CONNECTIONS = 8


@dataclass(frozen=True)
class DeliveryRun:
    seconds: float
    sent: int
    other: dict[str, int]
    sink_counted: int | None
    cpu: Cpu

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


@dataclass(frozen=True)
class Cpu:
    """CPU seconds spent while the timed delivery ran: where a mail's cost lands."""

    sender: float
    """The sending process: claims, decrypting, the SMTP client, recording outcomes."""
    render: float
    """The render processes together."""


@dataclass(frozen=True)
class BareRun:
    rate: float
    cpu: float
    """CPU seconds of the client's process over the run."""


def run_notifier(sink: Sink, count: int, profile_to: Path | None = None) -> DeliveryRun:
    """Queue ``count`` due messages, then drain them with ``dispatch_due`` and time it.

    A warm-up delivery (``workload.warm_up``) comes first, untimed.
    """
    folder = fresh_dir("delivery")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    engine.upgrade_database()
    try:
        seconds, counted, cpu = eventloop.run(_drain(engine, sink, count, profile_to))
        by_status = workload.count_sent(engine)
    finally:
        engine.close()
    sent = by_status.pop("sent", 0) - workload.WARM_UP
    return DeliveryRun(seconds, sent, by_status, counted, cpu)


async def _drain(
    engine: Notifier, sink: Sink, count: int, profile_to: Path | None
) -> tuple[float, int | None, Cpu]:
    """Seconds to deliver ``count`` messages after the warm-up, how many the sink counted,
    and the CPU that took."""
    await engine.start()
    profiler = _ThreadedProfile() if profile_to is not None else None
    try:
        await workload.warm_up(engine)
        await asyncio.to_thread(workload.queue_due, engine, count)
        before = sink.received()
        renderers = spawned_children()
        cpu_before = cpu_seconds(), sum(map(cpu_seconds, renderers))
        with stopwatch() as elapsed:
            if profiler is not None:
                with profiler:
                    await _dispatch_until_idle(engine)
            else:
                await _dispatch_until_idle(engine)
        cpu = Cpu(cpu_seconds() - cpu_before[0], sum(map(cpu_seconds, renderers)) - cpu_before[1])
        after = sink.received()
    finally:
        await engine.stop()
    if profiler is not None and profile_to is not None:
        profiler.dump(profile_to)
    counted = None if before is None or after is None else after - before
    return elapsed(), counted, cpu


async def _dispatch_until_idle(engine: Notifier) -> None:
    # run_once drains until a claim comes back empty; a second call confirms nothing is left.
    while await engine.dispatch_due():
        pass


class _ThreadedProfile:
    """cProfile over the event loop thread *and* the ``asyncio.to_thread`` workers.

    cProfile (3.11) sees only the thread that enabled it, and the dispatcher
    claims, renders and records in worker threads. So while active this
    wraps ``asyncio.to_thread`` to profile each call in its own profiler and
    merges them all: the report then shows where the delivery path's time
    really goes. Profiling slows everything down; read proportions, not rates.
    """

    def __init__(self) -> None:
        self._main = cProfile.Profile()
        self._threads: list[cProfile.Profile] = []
        self._original = asyncio.to_thread

    def __enter__(self) -> _ThreadedProfile:
        threads = self._threads
        original = self._original

        async def profiled_to_thread(func: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
            profiler = cProfile.Profile()
            threads.append(profiler)

            def run() -> _T:
                profiler.enable()
                try:
                    return func(*args, **kwargs)
                finally:
                    profiler.disable()

            return await original(run)

        asyncio.to_thread = profiled_to_thread
        self._main.enable()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._main.disable()
        asyncio.to_thread = self._original

    def dump(self, path: Path) -> None:
        stats = pstats.Stats(self._main)
        for profiler in self._threads:
            stats.add(profiler)
        stats.dump_stats(str(path))


def top_costs(path: Path, limit: int = 25) -> str:
    """The heaviest functions by cumulative and by own time, as pstats prints them."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


# -- baselines ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letters:
    """One pre-built letter per workload variant, and the mix's mean size in bytes."""

    sender: str
    by_variant: dict[tuple[str, str, int], bytes]
    mean_size: float


def build_letters(sink: Sink, count: int) -> Letters:
    """Render each distinct (kind, locale, lines) of the first ``count`` messages once."""
    folder = fresh_dir("letters")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    by_variant: dict[tuple[str, str, int], bytes] = {}
    sender = ""
    # Both sinks offer 8BITMIME, so notifier sends 8bit bodies after its first connect;
    # the baseline gets the same bytes.
    engine.assembler.composer.encoding.eight_bit = True
    try:
        for planned in workload.plans(
            min(count, 2 * len(workload.KIND_MIX) * workload.MAX_LINES * 5)
        ):
            if planned.variant in by_variant:
                continue
            number = int(planned.customer_id[1:])
            recipient = Recipient(
                planned.customer_id,
                workload.customer_email(number),
                workload.customer_name(number),
                planned.locale,
            )
            letter = engine.assembler.assemble(
                f"bench-{planned.index}", planned.kind, recipient, planned.context
            )
            by_variant[planned.variant] = letter.envelope.data
            sender = letter.envelope.sender
    finally:
        engine.close()
    sizes = [len(by_variant[p.variant]) for p in workload.plans(count)]
    return Letters(sender, by_variant, statistics.fmean(sizes))


def run_aiosmtplib(sink: Sink, letters: Letters, count: int) -> BareRun:
    """Messages/s for pre-built bytes over ``CONNECTIONS`` persistent aiosmtplib sessions."""
    jobs = [
        (workload.customer_email(p.index % workload.CUSTOMERS), letters.by_variant[p.variant])
        for p in workload.plans(count)
    ]
    start = cpu_seconds()
    rate = eventloop.run(push(sink.port, letters.sender, jobs))
    return BareRun(rate, cpu_seconds() - start)


async def push(port: int, sender: str, jobs: list[tuple[str, bytes]]) -> float:
    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) for _ in range(CONNECTIONS)
    ]
    await asyncio.gather(*(client.connect() for client in clients))
    pending = iter(jobs)

    async def pump(client: aiosmtplib.SMTP) -> None:
        for recipient, data in pending:
            options = ["BODY=8BITMIME"] if isinstance(data, compose.EightBitMessage) else []
            await client.sendmail(sender, [recipient], data, mail_options=options)

    try:
        with stopwatch() as elapsed:
            await asyncio.gather(*(pump(client) for client in clients))
    finally:
        await asyncio.gather(*(client.quit() for client in clients), return_exceptions=True)
    return len(jobs) / elapsed()


def run_smtp_source(sink: Sink, count: int, size: int) -> float:
    """Messages/s from Postfix's ``smtp-source``: 8 sessions, connections kept (``-d``)."""
    command = ["smtp-source", "-d", "-s", str(CONNECTIONS), "-m", str(count), "-l", str(size)]
    start = time.perf_counter()
    subprocess.run([*command, f"127.0.0.1:{sink.port}"], check=True, capture_output=True)
    return count / (time.perf_counter() - start)
