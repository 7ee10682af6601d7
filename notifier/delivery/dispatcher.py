"""The sender's schedule: when batches run, how many at once, and keeping what they hold.

While one batch is being sent the next is claimed and rendered
(``PIPELINE_DEPTH``), so the SMTP client never waits for the renderer; what
one batch does is ``delivery.pipeline``, and its outcomes are committed as
they happen by ``delivery.recorder``.

Mail a customer is waiting for right now (an order confirmation just
accepted) need not queue behind a backlog of due mail: ``wake`` may name
such messages, and an express lane claims them by id and sends them beside
a drain that is working through a backlog.

While it holds messages the dispatcher keeps them: every ``renew_every`` it
writes its heartbeat row and renews their leases, in one transaction. The
answer says which messages are still its own; the fence (``held``) lets a
send go only while the last such confirmation is recent enough that no
other worker can have taken the message over (4/5 of the heartbeat
timeout and of the lease). A worker that was paused past that confirms
again before it sends anything, and drops what it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.delivery.pipeline import DispatchConfig, Job, Pipeline, Transport
from notifier.delivery.recorder import Recorder
from notifier.mail.assembly import Assembler
from notifier.mail.pool import RenderPool
from notifier.store import outbox, workers
from notifier.store.db import Database
from notifier.vocabulary import FailureReason

__all__ = [
    "EXPRESS_AHEAD",
    "PIPELINE_DEPTH",
    "UNWRITTEN_PER_CONNECTION",
    "DispatchConfig",
    "Dispatcher",
    "Transport",
]

log = logging.getLogger(__name__)
PIPELINE_DEPTH = 2
"""Batches in flight at once: the next one is claimed and rendered while the last is sent."""
EXPRESS_LIMIT = 50
"""Most messages the express lane holds; beyond that they are sent from the queue as usual."""
EXPRESS_AHEAD = 100
"""Messages under way beyond which urgent mail takes the express lane: a fraction of a second
of sending. With fewer, and a drain whose last claim took all that was due, the drain's next
claim takes it about as soon, and the lane's extra transactions would only slow intake down."""
UNWRITTEN_PER_CONNECTION = 3
"""Outcomes per SMTP connection that may wait for a commit before sends pause. With the sends
in flight, a crash repeats at most ``4 * connections - 1`` mails (31 with 8), however slow
the database."""
TRUST = 0.8
"""The share of the heartbeat timeout (and of the lease) a confirmation is trusted for."""


class Dispatcher:
    """Drains the outbox of due messages; ``wake`` makes it look again at once."""

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        assembler: Assembler,
        transport: Transport,
        clock: Clock,
        config: DispatchConfig,
        pool: RenderPool | None = None,
        on_outcome: Callable[[str, str, float], None] | None = None,
        on_failure: Callable[[str, FailureReason], None] | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._config = config
        self._held: set[str] = set()
        """Messages of the batches under way: kept until their outcomes are handed in."""
        recorder = Recorder(
            database,
            sealer,
            clock,
            config.owner,
            webhooks_on=config.webhooks,
            patience=config.lease.total_seconds() / 2,
            most_unwritten=UNWRITTEN_PER_CONNECTION * config.concurrency,
            on_handed=self._held.discard,
        )
        self._pipeline = Pipeline(
            database,
            sealer,
            assembler,
            transport,
            clock,
            config,
            recorder,
            held=self.held,
            stopping=lambda: self._stopping,
            pool=pool,
            on_outcome=on_outcome,
            on_failure=on_failure,
        )
        self._lock = asyncio.Lock()
        self._again = False
        self._keeping_up = False
        """The drain's last claim took all that was due (less than a batch): it keeps up."""
        self._stopping = False
        self._express_ids: set[str] = set()
        self._express: asyncio.Task[None] | None = None
        self._lost: set[str] = set()
        """Held messages another worker has taken over: never sent from here."""
        self._trusted_until = 0.0
        """``time.monotonic()`` until which no other worker can have taken ``_held`` over."""
        self._confirming = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        timeout = config.heartbeat_timeout.total_seconds()
        lease = config.lease.total_seconds()
        self._trust = TRUST * min(timeout, lease)
        self._every = (
            config.renew_every.total_seconds()
            if config.renew_every is not None
            else min(timeout / 4, lease / 3)
        )

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop so ``wake`` may be called from other threads."""
        self._loop = loop

    def wake(self, express: Iterable[str] = ()) -> None:
        """Ask for a drain soon; safe from any thread; a no-op before ``bind`` or after ``stop``.

        ``express`` names messages just queued, due now, that someone is
        waiting for: they are claimed by id and rendered in this process, not
        behind a backlog or a render pool that is still starting (see
        ``EXPRESS_AHEAD``).
        """
        loop = self._loop
        if loop is None or self._stopping or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._start_drain, tuple(express))

    def _start_drain(self, express: tuple[str, ...] = ()) -> None:
        if not self._lock.locked():
            self._start_express(express)
            task = asyncio.ensure_future(self.run_once())
            task.add_done_callback(_log_failure)
            return
        self._again = True
        if not self._keeping_up or len(self._held) > EXPRESS_AHEAD:
            self._start_express(express)

    def _start_express(self, ids: tuple[str, ...]) -> None:
        room = EXPRESS_LIMIT - len(self._express_ids)
        self._express_ids.update(ids[: max(room, 0)])
        if self._express_ids and self._express is None and not self._stopping:
            self._express = asyncio.ensure_future(self._run_express())
            self._express.add_done_callback(_log_failure)

    async def _run_express(self) -> None:
        """Send the messages ``wake`` named, rendered in this process so no chunk queue delays them.

        Any of them the main drain claimed first are simply not claimed again.
        """
        try:
            while self._express_ids and not self._stopping:
                ids = list(self._express_ids)
                self._express_ids.clear()
                batch = await self._claim(len(ids), ids)
                if batch:
                    await self._deliver(batch, in_process=True)
        finally:
            self._express = None

    async def run_once(self) -> int:
        """Deliver every message due now; returns how many reached a final or retry state.

        If another drain is running, it is asked to go round once more
        instead, so a wake is never lost.
        """
        if self._lock.locked():
            self._again = True
            return 0
        async with self._lock:
            return await self._drain()

    async def _drain(self) -> int:
        """Claim batches until none is due, keeping ``PIPELINE_DEPTH`` of them under way."""
        self._keeping_up = False  # until a claim shows it
        done = 0
        in_flight: set[asyncio.Task[int]] = set()
        try:
            while not self._stopping:
                self._again = False
                batch = await self._claim(self._config.batch_size)
                self._keeping_up = len(batch) < self._config.batch_size
                if batch:
                    in_flight.add(asyncio.create_task(self._deliver(batch)))
                elif not in_flight:
                    if self._again:
                        continue
                    break
                if not batch or len(in_flight) >= PIPELINE_DEPTH:
                    finished, in_flight = await asyncio.wait(
                        in_flight, return_when=asyncio.FIRST_COMPLETED
                    )
                    done += sum(task.result() for task in finished)
        except asyncio.CancelledError:
            for task in in_flight:
                task.cancel()
            raise
        finally:
            # On stop or error the batches under way still finish and record their outcomes.
            for outcome in await asyncio.gather(*in_flight, return_exceptions=True):
                if isinstance(outcome, int):
                    done += outcome
                elif not isinstance(outcome, asyncio.CancelledError):
                    log.error("dispatch.batch_crashed", exc_info=outcome)
        return done

    async def _claim(self, limit: int, only: Iterable[str] | None = None) -> list[Job]:
        """Claim a batch and hold it; the claim's heartbeat and leases are trusted from now."""
        began = time.monotonic()
        batch = await asyncio.to_thread(self._pipeline.claim, limit, only)
        if batch:
            if not self._held:
                self._trusted_until = began + self._trust
            self._held |= {job.message.id for job in batch}
            if self._keeper is None:
                self._keeper = asyncio.create_task(self._keep())
        return batch

    async def _deliver(self, batch: list[Job], *, in_process: bool = False) -> int:
        try:
            return await self._pipeline.deliver(batch, in_process=in_process)
        finally:
            ids = {job.message.id for job in batch}
            self._held -= ids
            self._lost -= ids

    async def held(self, message_id: str) -> bool:
        """The fence: may this worker send ``message_id`` now, i.e. does it still own it?

        Answered from memory while the last confirmation is trusted; past
        that (the process was paused, renewals failed) the ownership is
        confirmed in the database first.
        """
        if message_id in self._lost:
            return False
        if time.monotonic() < self._trusted_until:
            return True
        async with self._confirming:
            if time.monotonic() >= self._trusted_until:
                await self._confirm()
        return message_id not in self._lost and time.monotonic() < self._trusted_until

    async def _keep(self) -> None:
        """While messages are held: heartbeat and lease renewal every ``renew_every``."""
        try:
            while self._held:
                await asyncio.sleep(self._every)
                async with self._confirming:
                    await self._confirm()
        finally:
            self._keeper = None

    async def _confirm(self) -> None:
        """Beat, renew the leases of what is held, and learn which of it is still ours."""
        began = time.monotonic()
        held = set(self._held)
        try:
            kept = await asyncio.to_thread(self._renew, held)
        except errors.ServiceUnavailable:
            log.warning("dispatch.lease_renewal_failed")  # tried again next time
            return
        except Exception:  # never end the renewals while batches are under way
            log.exception("dispatch.lease_renewal_crashed")
            return
        # Missing from the answer is also what finished meanwhile: its outcome was handed in
        # (and committed) while the renewal ran. Only what is still held here was taken over.
        lost = (held - kept) & self._held
        if lost - self._lost:
            log.warning("dispatch.lease_lost messages=%d", len(lost - self._lost))
        self._lost |= lost
        self._trusted_until = began + self._trust
        log.debug("dispatch.leases_renewed messages=%d", len(kept))

    def _renew(self, held: Collection[str]) -> set[str]:
        now = self._clock.now()
        with self._db.transaction() as session:
            workers.beat(session, self._config.owner, now)
            return outbox.renew_leases(session, self._config.owner, held, now, self._config.lease)

    async def stop(self) -> None:
        """Finish the sends in flight, give back the rest of the batches, and stop.

        The heartbeat row goes last: nothing is held any more, so nothing
        needs taking over.
        """
        self._stopping = True
        async with self._lock:
            pass
        if self._express is not None:
            await asyncio.wait([self._express])
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._pipeline.has_beaten:
            try:
                await asyncio.to_thread(self._leave)
            except errors.ServiceUnavailable:
                log.warning("dispatch.leave_failed")  # the row ages out; nothing is held

    def _leave(self) -> None:
        with self._db.transaction() as session:
            workers.leave(session, self._config.owner)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    if isinstance(task.exception(), errors.ServiceUnavailable):
        log.warning("dispatch.database_unavailable")  # the next poll tries again
        return
    log.error("dispatch.crashed", exc_info=task.exception())
