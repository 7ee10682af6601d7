"""APScheduler wiring: the clock that makes each process look at the outbox.

APScheduler 3 must not share a job store between processes, so each
process keeps an in-memory store with a few interval jobs; coordination
happens in the database (see ``store.outbox.lease_due``).
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
    """Start the jobs of one ``serve`` or ``worker`` process on the running event loop.

    Dispatch may overlap itself once (a wake-up during a long drain just asks
    the running drain to go round again); the others run one at a time.
    """
    settings = engine.settings
    jobs: list[tuple[str, Callable[[], Awaitable[int]], float, int]] = [
        ("dispatch", engine.dispatch_due, settings.poll_interval, 2),
        ("campaigns", engine.advance_campaigns, settings.campaign_interval, 1),
        ("retention", engine.purge_expired, 3600.0, 1),
    ]
    if engine.webhook_sender is not None:
        jobs.append(("webhooks", engine.deliver_webhooks, settings.webhook_interval, 1))
    clock = AsyncIOScheduler(timezone=UTC)
    for name, job, seconds, instances in jobs:
        clock.add_job(
            _tolerant(name, job),
            "interval",
            seconds=seconds,
            id=name,
            next_run_time=SystemClock().now(),
            max_instances=instances,
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
