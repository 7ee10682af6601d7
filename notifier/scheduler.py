"""APScheduler wiring: the clock that makes each process look at the outbox.

APScheduler 3 must not share a job store between processes, so each
process keeps an in-memory store with a few interval jobs; coordination
happens in the database (see ``store.outbox.claim_due``).
"""

from __future__ import annotations

from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from notifier.clock import SystemClock
from notifier.service import Notifier


def start(engine: Notifier) -> AsyncIOScheduler:
    """Start the jobs of one ``serve`` or ``worker`` process on the running event loop."""
    clock = AsyncIOScheduler(timezone=UTC)
    clock.add_job(
        engine.dispatch_due,
        "interval",
        seconds=engine.settings.poll_interval,
        id="dispatch",
        next_run_time=SystemClock().now(),
        max_instances=2,
        coalesce=True,
        misfire_grace_time=None,
    )
    clock.add_job(
        engine.advance_campaigns,
        "interval",
        seconds=engine.settings.campaign_interval,
        id="campaigns",
        next_run_time=SystemClock().now(),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    clock.add_job(
        engine.purge_expired,
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
