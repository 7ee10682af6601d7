"""Assembling letters in worker processes, so rendering uses every core.

Rendering (Jinja, MJML, the plain-text part) is CPU-bound Python; in one
process it shares a core and the GIL with the SMTP client and the API. With
``NOTIFIER_RENDER_PROCESSES`` > 0 each batch is split over that many worker
processes, each holding its own ``Assembler`` built from the same settings.
Processes are spawned, not forked: the parent runs threads and an event loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

from notifier.clock import FrozenClock
from notifier.mail.assembly import Assembler, Letter, Recipient, assemble_or_reason
from notifier.settings import Settings

Item = tuple[str, str, Recipient, dict[str, Any]]
"""One message to assemble: its key, kind, recipient and stored context."""

_assembler: Assembler | None = None
_clock: FrozenClock | None = None


class RenderPool:
    """A pool of render processes; ``assemble`` keeps the order of its items."""

    def __init__(self, settings: Settings, secret_keys: list[str], processes: int) -> None:
        self._processes = processes
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings, secret_keys),
        )

    async def assemble(self, items: Sequence[Item], now: datetime) -> list[Letter | str]:
        """Each item's letter, or the reason it could not be made; ``now`` dates the mails."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        size = -(-len(items) // (self._processes * 2))  # two chunks a process evens out the load
        chunks = [list(items[start : start + size]) for start in range(0, len(items), size)]
        done = await asyncio.gather(
            *(loop.run_in_executor(self._executor, _assemble_chunk, chunk, now) for chunk in chunks)
        )
        return [letter for chunk in done for letter in chunk]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _start(settings: Settings, secret_keys: list[str]) -> None:
    """In each worker process: build the assembler once, with a clock the parent sets."""
    global _assembler, _clock
    _clock = FrozenClock(datetime(1970, 1, 1, tzinfo=UTC))
    _assembler = Assembler.from_settings(settings, secret_keys, _clock)


def _assemble_chunk(chunk: list[Item], now: datetime) -> list[Letter | str]:
    assert _assembler is not None and _clock is not None, "worker not initialised"
    _clock.set(now)
    return [assemble_or_reason(_assembler, *item) for item in chunk]
