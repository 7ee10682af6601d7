"""Assembling letters in worker processes, so rendering uses every core.

Rendering (Jinja, MJML, the plain-text part) is CPU-bound Python; in one
process it shares a core and the GIL with the SMTP client and the API. With
``NOTIFIER_RENDER_PROCESSES`` > 0 the dispatcher hands its batches to that
many worker processes in small chunks, so the first letters are sent while
later ones are still being rendered. Each process holds its own
``Assembler`` built from the same settings.
Processes are spawned, not forked: the parent runs threads and an event loop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import Any, NamedTuple

from notifier.clock import FrozenClock
from notifier.mail.assembly import Assembler, Letter, MailSettings, assemble_or_reason
from notifier.mail.compose import BodyEncoding
from notifier.mail.failure import RenderFailure
from notifier.recipient import Recipient


class Item(NamedTuple):
    """One message to assemble, its fields in ``assemble_or_reason``'s order.

    A named tuple, not a dataclass: chunks of these cross to the render
    processes, and a tuple pickles as its values with the class named once.
    """

    key: str
    kind: str
    recipient: Recipient
    context: dict[str, Any]


log = logging.getLogger(__name__)
CLOSE_GRACE = 5.0
"""Seconds the render processes get to exit on close before they are killed."""
_assembler: Assembler | None = None
_clock: FrozenClock | None = None


class RenderPool:
    """A pool of render processes, each with its own assembler."""

    def __init__(
        self,
        settings: MailSettings,
        secret_keys: list[str],
        processes: int,
        timeout: float = 60.0,
        encoding: BodyEncoding | None = None,
    ) -> None:
        """``encoding`` (the transport's) goes with each chunk: 8bit or quoted-printable bodies."""
        self._processes = processes
        self._encoding = encoding or BodyEncoding()
        self._timeout = timeout
        self._start_args = (settings, secret_keys)
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=self._start_args,
        )

    def submit(
        self, items: Sequence[Item], now: datetime
    ) -> asyncio.Future[list[Letter | RenderFailure]]:
        """Queue a chunk for the next free process: each item's letter, or why it could not be made.

        Chunks run in the order submitted; ``now`` dates the mails. Cancelling
        the future before a process has taken the chunk drops it. If a process
        died (the OOM killer), the chunks under way fail with
        ``BrokenProcessPool`` and a fresh pool takes over.
        """
        loop = asyncio.get_running_loop()
        executor = self._executor
        args = (list(items), now, self._encoding.eight_bit)
        try:
            future = loop.run_in_executor(executor, _assemble_chunk, *args)
        except BrokenProcessPool:
            executor = self._replace(executor, "a render process died")
            future = loop.run_in_executor(executor, _assemble_chunk, *args)
        return asyncio.ensure_future(self._answer(future, executor))

    async def _answer(
        self, future: asyncio.Future[list[Letter | RenderFailure]], executor: ProcessPoolExecutor
    ) -> list[Letter | RenderFailure]:
        """The chunk's letters, unless no answer comes within the timeout.

        A process killed while it wrote its answer leaves half a message in
        the result pipe, and the executor then waits for the rest forever
        (CPython's ProcessPoolExecutor cannot tell); the timeout is what
        notices, and a fresh pool takes over.
        """
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            self._replace(executor, f"no answer in {self._timeout:g} s")
            raise BrokenProcessPool("a render process did not answer") from None

    def _replace(self, broken: ProcessPoolExecutor, reason: str) -> ProcessPoolExecutor:
        """A fresh pool in place of ``broken`` (once, however many chunks noticed)."""
        if broken is self._executor:
            log.warning("render.pool_restarted reason=%s", reason)
            self._executor = self._new_executor()
            _end_hung(broken)
            broken.shutdown(wait=False, cancel_futures=True)
        return self._executor

    def warm(self) -> None:
        """Start every process now, so the first batch does not wait for them to boot."""
        for _ in range(self._processes):
            self._executor.submit(_ready)

    def close(self) -> None:
        """End the render processes; any left after ``CLOSE_GRACE`` (stopped, hung) are killed.

        Waiting without a limit would hang the whole stop on one process that
        can no longer answer but held no chunk, so the timeout never saw it.
        """
        executor = self._executor
        processes = _processes_of(executor)
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + CLOSE_GRACE
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        _end_hung(executor, processes)


def _end_hung(
    executor: ProcessPoolExecutor,
    processes: list[multiprocessing.process.BaseProcess] | None = None,
) -> None:
    """Kill a replaced executor's processes and let its manager thread see the pipe close.

    The executor has no public way to do this. Its manager thread may be
    blocked reading half an answer; with every writer of that pipe gone (the
    processes killed, this process's end closed) the read ends, the thread
    exits, and the interpreter can exit too.
    """
    if processes is None:
        processes = _processes_of(executor)
    for process in processes:
        if process.is_alive():
            process.kill()
    results = getattr(executor, "_result_queue", None)
    writer = getattr(results, "_writer", None)
    if writer is not None:
        writer.close()


def _processes_of(executor: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    """The executor's worker processes (it has no public way to list them)."""
    return list((getattr(executor, "_processes", None) or {}).values())


def default_processes(sharing: int = 1) -> int:
    """Render processes for one of ``sharing`` engine processes on this machine.

    The usable cores divided among them; none when that leaves fewer than
    two, where render processes would only compete with their parent.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = (cores or 1) // sharing
    return share if share >= 2 else 0


def _ready() -> None:
    """Nothing: submitted only to make the pool start a process."""


def _start(settings: MailSettings, secret_keys: list[str]) -> None:
    """In each worker process: build the assembler once, with a clock the parent sets.

    Every template is compiled here, while ``warm`` boots the process, so the
    first chunks after a start do not wait for it.
    """
    global _assembler, _clock
    threading.Thread(target=_exit_with_parent, name="notifier-render-watch", daemon=True).start()
    _clock = FrozenClock(datetime(1970, 1, 1, tzinfo=UTC))
    _assembler = Assembler.from_settings(settings, secret_keys, _clock)
    _assembler.renderer.compile_all()


def _exit_with_parent() -> None:
    """End this process when the parent does, even by SIGKILL: an orphan would render nothing.

    A spawned worker holds both ends of its task queue, so it never sees the
    parent go; the parent's sentinel does.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)


def _assemble_chunk(
    chunk: list[Item], now: datetime, eight_bit: bool
) -> list[Letter | RenderFailure]:
    assert _assembler is not None and _clock is not None, "worker not initialised"
    _clock.set(now)
    _assembler.composer.encoding.eight_bit = eight_bit
    return [assemble_or_reason(_assembler, *item) for item in chunk]
