"""The one way ``serve`` and ``worker`` start and stop delivering, in that order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from notifier.runtime import scheduler

if TYPE_CHECKING:
    from notifier.service import Notifier


@asynccontextmanager
async def delivering(engine: Notifier) -> AsyncIterator[None]:
    """The engine sending in this process: started, then its clock jobs; stopped the other way.

    The jobs end first so that no new batch begins while ``stop`` finishes the
    sends in flight and hands back the leases.
    """
    await engine.start()
    jobs = scheduler.start(engine)
    try:
        yield
    finally:
        jobs.shutdown(wait=False)
        await engine.stop()
