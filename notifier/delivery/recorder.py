"""The outcome writer: each commit takes whatever finished since the last one, continuously.

A sent mail whose outcome is not yet written is a duplicate waiting to
happen: if the process dies, the message is still ``sending`` and the next
owner sends it again. So outcomes are not held until their batch is done.
Each one is handed to the recorder the moment the server answers, and the
recorder commits what it has, then at once what came in during that commit,
and so on: an outcome waits at most one commit, a few milliseconds. At full
speed that is one transaction per few dozen mails, as cheap per mail as a
batch's.

A commit that takes long (a loaded machine, a slow disk) must not let the
unwritten outcomes grow with it: a send begins only while fewer than
``most_unwritten`` outcomes wait to be written (``room``). So however slow
the database, a crash repeats at most those plus the sends in flight.

A database that is briefly unreachable is waited out with backoff, for up
to ``patience`` seconds (half the lease); past that the outcomes are given
up, logged, and the lease takeover (on record as ``lease_expired``) is the
fallback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.store import outbox, suppressions, webhooks
from notifier.store.db import Database
from notifier.vocabulary import MessageStatus, SuppressionReason

log = logging.getLogger(__name__)
_FIRST_DELAY = 0.25
_LONGEST_DELAY = 5.0
_WEBHOOKS = {MessageStatus.SENT: "message.sent", MessageStatus.FAILED: "message.failed"}


@dataclass
class _Pending:
    """What finished since the last commit, and who waits for it to be written."""

    outcomes: dict[MessageStatus, list[outbox.Outcome]] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    bounced: list[str] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(map(len, self.outcomes.values())) + len(self.released) + len(self.bounced)


class Recorder:
    """Writes outcomes as they come, in commits that follow each other without a pause."""

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        clock: Clock,
        owner: str,
        *,
        webhooks_on: bool,
        patience: float,
        most_unwritten: int,
        on_handed: Callable[[str], None] | None = None,
    ) -> None:
        """``on_handed`` hears of each message whose outcome (or release) was handed in:
        its worker no longer needs to keep it."""
        self._db = database
        self._sealer = sealer
        self._clock = clock
        self._owner = owner
        self._webhooks_on = webhooks_on
        self._patience = patience
        self._on_handed = on_handed
        self._most_unwritten = most_unwritten
        self._pending = _Pending()
        self._writing = 0
        self._written = asyncio.Condition()
        self._writer: asyncio.Task[None] | None = None

    def add(self, status: MessageStatus, outcome: outbox.Outcome) -> None:
        """Record that one attempt ended in ``status``; written within one commit from now."""
        self._pending.outcomes.setdefault(status, []).append(outcome)
        if self._on_handed is not None:
            self._on_handed(outcome.id)
        self._kick()

    def release(self, ids: Collection[str]) -> None:
        """Give messages back to the queue untried (their sends never began)."""
        if ids:
            self._pending.released.extend(ids)
            if self._on_handed is not None:
                for message_id in ids:
                    self._on_handed(message_id)
            self._kick()

    def bounce(self, email_index: str) -> None:
        """Suppress an address the server called unknown (a 5.1.x reply)."""
        self._pending.bounced.append(email_index)
        self._kick()

    async def room(self) -> None:
        """Return once fewer than ``most_unwritten`` outcomes wait to be written: call
        before a send begins, so that a crash can repeat only a bounded number of them."""
        if self._has_room():  # the usual case, without taking the condition's lock
            return
        async with self._written:
            await self._written.wait_for(self._has_room)

    def _has_room(self) -> bool:
        return len(self._pending) + self._writing < self._most_unwritten

    async def flush(self) -> None:
        """Return once everything handed in so far is written (or given up, logged)."""
        if not len(self._pending) and self._writer is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._pending.waiters.append(waiter)
        self._kick()
        await waiter

    def _kick(self) -> None:
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_continuously())

    async def _write_continuously(self) -> None:
        try:
            while len(self._pending) or self._pending.waiters:
                pending, self._pending = self._pending, _Pending()
                self._writing = len(pending)
                try:
                    if len(pending):
                        await self._write(pending)
                except Exception:
                    log.exception("dispatch.record_crashed messages=%d", len(pending))
                finally:
                    self._writing = 0
                    for waiter in pending.waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                    async with self._written:
                        self._written.notify_all()
        finally:
            self._writer = None

    async def _write(self, pending: _Pending) -> None:
        """One commit of ``pending``, tried again while the database is unreachable."""
        delay = _FIRST_DELAY
        deadline = time.monotonic() + self._patience
        while True:
            try:
                await asyncio.to_thread(self._commit, pending)
                return
            except errors.ServiceUnavailable:
                if time.monotonic() + delay > deadline:
                    log.error("dispatch.record_failed messages=%d", len(pending))
                    return
                log.warning("dispatch.record_retry messages=%d delay=%.2f", len(pending), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LONGEST_DELAY)

    def _commit(self, pending: _Pending) -> None:
        now = self._clock.now()
        with self._db.transaction() as session:
            outbox.record(session, self._owner, pending.outcomes, now)
            outbox.release(session, self._owner, pending.released, now)
            for email_index in pending.bounced:
                suppressions.add(
                    session,
                    self._sealer,
                    email_index,
                    SuppressionReason.HARD_BOUNCE,
                    "SMTP 5.1.x",
                    now,
                )
            if self._webhooks_on:
                for status, kind in _WEBHOOKS.items():
                    ids = [outcome.id for outcome in pending.outcomes.get(status, ())]
                    webhooks.add_for_messages(session, kind, ids, now)
