"""APScheduler wiring: the clock that makes each process look at the outbox.

APScheduler 3 must not share a job store between processes, so each
process keeps an in-memory store with a few interval jobs; coordination
happens in the database (see ``store.outbox.claim_due``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from notifier import errors
from notifier.clock import SystemClock
from notifier.service import Notifier

log = logging.getLogger(__name__)


def start(engine: Notifier) -> AsyncIOScheduler:
    """Start the jobs of one ``serve`` or ``worker`` process on the running event loop."""
    clock = AsyncIOScheduler(timezone=UTC)
    clock.add_job(
        _tolerant("dispatch", engine.dispatch_due),
        "interval",
        seconds=engine.settings.poll_interval,
        id="dispatch",
        next_run_time=SystemClock().now(),
        max_instances=2,
        coalesce=True,
        misfire_grace_time=None,
    )
    clock.add_job(
        _tolerant("campaigns", engine.advance_campaigns),
        "interval",
        seconds=engine.settings.campaign_interval,
        id="campaigns",
        next_run_time=SystemClock().now(),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    clock.add_job(
        _tolerant("retention", engine.purge_expired),
        "interval",
        hours=1,
        id="retention",
        next_run_time=SystemClock().now(),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    clock.start()
    return clock


def _tolerant(name: str, job: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    """``job``, shielded from cancellation, with an unreachable database logged as a warning.

    Shielded: APScheduler's ``shutdown`` cancels the running jobs, and a
    cancelled drain would abandon its sends mid-DATA, leaving them leased
    and later re-sent as possible duplicates. Shielded, the drain goes on;
    ``Notifier.stop`` then lets the sends in flight finish and hands back
    the rest. An unreachable database is an expected, transient condition
    (the next tick tries again; claimed messages keep their lease), so it
    gets one warning line rather than a traceback every tick.
    """

    async def guarded() -> int:
        try:
            return await job()
        except errors.ServiceUnavailable as exc:
            log.warning("scheduler.database_unavailable job=%s error=%s", name, exc.message[:200])
            return 0
        except Exception:
            log.exception("scheduler.job_failed job=%s", name)
            return 0

    async def run() -> int:
        try:
            return await asyncio.shield(guarded())
        except asyncio.CancelledError:
            # Only the scheduler's shutdown cancels a job; the shielded part runs on.
            log.info("scheduler.job_detached job=%s", name)
            return 0

    run.__name__ = run.__qualname__ = f"{name}_job"
    return run
