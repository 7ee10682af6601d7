"""The outcome writer (``delivery.recorder``): outcomes wait one commit, and never pile up.

However slow a commit, sends pause while ``most_unwritten`` outcomes wait for it,
so a crash can repeat only those and the sends in flight.
"""

from __future__ import annotations

import asyncio

from notifier.clock import FrozenClock
from notifier.crypto import Sealer
from notifier.delivery.recorder import Recorder
from notifier.store import outbox
from notifier.store.db import Database
from notifier.vocabulary import MessageStatus
from tests.batches import write_lock
from tests.conftest import TEST_ENCRYPTION_KEY

MOST_UNWRITTEN = 3


def recorder(database: Database, clock: FrozenClock) -> Recorder:
    sealer = Sealer([TEST_ENCRYPTION_KEY], "test-secret-key")
    return Recorder(
        database,
        sealer,
        clock,
        "worker-1",
        webhooks_on=False,
        patience=30,
        most_unwritten=MOST_UNWRITTEN,
    )


async def test_sends_pause_while_a_slow_commit_holds_the_most_outcomes_unwritten(
    database: Database, database_url: str, clock: FrozenClock
) -> None:
    writer = recorder(database, clock)
    with write_lock(database_url, "messages"):
        for number in range(MOST_UNWRITTEN - 1):
            writer.add(MessageStatus.SENT, outbox.Outcome(f"m{number}", 1))
        await asyncio.wait_for(writer.room(), 5)  # below the bound: a send may begin

        writer.add(MessageStatus.SENT, outbox.Outcome("m-last", 1))
        room = asyncio.ensure_future(writer.room())
        done, _ = await asyncio.wait([room], timeout=0.5)
        assert not done, "a send began while the most outcomes waited for a commit"
    await asyncio.wait_for(room, 30)  # the commit went through: sends go on
    await writer.flush()
