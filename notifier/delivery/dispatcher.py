"""The sender loop: claim due messages, render them, deliver them, record what happened.

A single transaction claims a batch and loads its recipients. The batch is
rendered in chunks, off the event loop (in a thread, or in the render
processes), and every letter is sent as soon as its chunk is made, at most
``concurrency`` sends at once across all batches. While one batch is being
sent the next is claimed and rendered, so the SMTP client never waits for
the renderer. A batch's outcomes are written in one transaction when its
last send is done, tried again while the database is briefly unreachable,
because an outcome that is never written turns into a duplicate when the
lease expires.

Mail a customer is waiting for right now (an order confirmation just
accepted) need not queue behind a backlog of due mail: ``wake`` may name
such messages, and an express lane claims them by id and sends them beside
a drain that is working through a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.delivery import retry, slots
from notifier.flows import consent, privacy
from notifier.mail.assembly import Assembler, Letter, assemble_or_reason
from notifier.mail.failure import Unrendered
from notifier.mail.pool import Item, RenderPool
from notifier.store import campaigns, customers, outbox, preferences, suppressions, webhooks
from notifier.store.db import Database
from notifier.store.models import FailureReason
from notifier.vocabulary import SuppressionReason

log = logging.getLogger(__name__)
_BAD_MAILBOX = re.compile(r"^5\.1\.\d+")
_WHITESPACE = re.compile(r"\s+")
_REPLY_IN_LOG = 200
"""Characters of a server's reply a log line keeps (its addresses redacted)."""
_RECORD_FIRST_DELAY = 0.25
_RECORD_LONGEST_DELAY = 5.0
PIPELINE_DEPTH = 2
"""Batches in flight at once: the next one is claimed and rendered while the last is sent.

It is also the bound on duplicates after a crash: what a dead worker holds."""
FIRST_CHUNK = 25
"""Letters in a batch's first render step: its sending begins after them, not after the batch."""
RENDER_CHUNK = 100
"""Letters in each later render step: fewer, larger steps cost less per letter (about 3 %)."""
EXPRESS_LIMIT = 50
"""Most messages the express lane holds; beyond that they are sent from the queue as usual."""
EXPRESS_AHEAD = 100
"""Messages under way beyond which urgent mail takes the express lane: a fraction of a second
of sending. With fewer, and a drain whose last claim took all that was due, the drain's next
claim takes it about as soon, and the lane's extra transactions would only slow intake down."""


class Transport(Protocol):
    """Delivers raw messages; raises ``DeliveryError`` subclasses, classified."""

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> str: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class _Job:
    """A claimed message with what sending it needs, looked up in the claim transaction."""

    message: outbox.Claimed
    recipient: customers.Recipient | None
    context: dict[str, Any]
    blocked: str | None


@dataclass
class _Results:
    sent: list[outbox.Outcome] = field(default_factory=list)
    retrying: list[outbox.Outcome] = field(default_factory=list)
    failed: list[outbox.Outcome] = field(default_factory=list)
    suppressed: list[outbox.Outcome] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    bounced: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.retrying) + len(self.failed) + len(self.suppressed)


@dataclass(frozen=True)
class DispatchConfig:
    owner: str
    batch_size: int = 200
    lease: timedelta = timedelta(minutes=5)
    retry_max_age: timedelta = timedelta(days=3)
    renew_every: timedelta | None = None
    """How often the leases of batches under way are extended; a third of ``lease`` if None."""
    webhooks: bool = False
    """Record ``message.sent`` and ``message.failed`` webhook events with the outcomes."""
    concurrency: int = 8
    """Sends under way at once; match the transport's connections (``NOTIFIER_SMTP_CONNECTIONS``).

    The dispatcher bounds this itself rather than leaving it to the
    transport's pool, so that on ``stop`` it knows which sends have begun:
    those finish, the rest of the batch is handed back untried.
    """


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
        self._sealer = sealer
        self._assembler = assembler
        self._transport = transport
        self._clock = clock
        self._config = config
        self._pool = pool
        self._on_outcome = on_outcome
        self._on_failure = on_failure
        self._lock = asyncio.Lock()
        self._slots = slots.Slots(config.concurrency)
        self._again = False
        self._keeping_up = False
        """The drain's last claim took all that was due (less than a batch): it keeps up."""
        self._stopping = False
        self._express_ids: set[str] = set()
        self._express: asyncio.Task[None] | None = None
        self._held: set[str] = set()
        """Messages of the batches under way: leases renewed until their outcomes are written."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._random = random.Random()

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
                batch = await asyncio.to_thread(self._claim, len(ids), ids)
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
        renewing = asyncio.create_task(self._renew_leases())
        try:
            while not self._stopping:
                self._again = False
                batch = await asyncio.to_thread(self._claim, self._config.batch_size)
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
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        return done

    async def _renew_leases(self) -> None:
        """While a drain runs, keep extending the leases of the batches under way.

        A batch whose outcomes could not be written is no longer held, so its
        lease runs out and another worker takes it over, on record.
        """
        lease = self._config.lease
        every = (self._config.renew_every or lease / 3).total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                renewed = await asyncio.to_thread(self._renew, lease)
            except errors.ServiceUnavailable:
                log.warning("dispatch.lease_renewal_failed")  # tried again next time
            except Exception:  # never end the renewals while batches are under way
                log.exception("dispatch.lease_renewal_crashed")
            else:
                log.debug("dispatch.leases_renewed messages=%d", renewed)

    def _renew(self, lease: timedelta) -> int:
        held = list(self._held)
        if not held:
            return 0
        with self._db.transaction() as session:
            return outbox.renew_leases(session, self._config.owner, held, self._clock.now(), lease)

    async def stop(self) -> None:
        """Finish the sends in flight, give back the rest of the batches, and stop."""
        self._stopping = True
        async with self._lock:
            pass
        if self._express is not None:
            await asyncio.wait([self._express])

    def _claim(self, limit: int, only: Iterable[str] | None = None) -> list[_Job]:
        """Lease a batch and look up, in the same transaction, all that sending it needs.

        Preferences and suppressions are read here, at send time, so a choice
        made after a message was queued still stops it.
        """
        with self._db.transaction() as session:
            claimed = outbox.claim_due(
                session,
                self._sealer,
                owner=self._config.owner,
                now=self._clock.now(),
                limit=limit,
                lease=self._config.lease,
                only=None if only is None else list(only),
            )
            if not claimed:
                return []
            recipients = customers.get_many(session, self._sealer, (c.customer_id for c in claimed))
            choices = preferences.choices_for(session, recipients)
            suppressed = suppressions.reasons_for(
                session, (r.email_index for r in recipients.values())
            )
            shared = campaigns.contexts(session, {c.campaign_id for c in claimed if c.campaign_id})
        jobs = []
        for message in claimed:
            recipient = recipients.get(message.customer_id)
            blocked = (
                "recipient erased"
                if recipient is None
                else consent.blocked(
                    message.category,
                    choices.get((message.customer_id, message.category)),
                    suppressed.get(recipient.email_index),
                )
            )
            context = (
                shared.get(message.campaign_id, {}) if message.campaign_id else message.context
            )
            jobs.append(_Job(message, recipient, context, blocked))
        return jobs

    async def _deliver(self, batch: list[_Job], *, in_process: bool = False) -> int:
        """Send each letter of the batch as soon as it is rendered; record every outcome."""
        results = _Results()
        ids = {job.message.id for job in batch}
        self._held |= ids
        jobs = self._sendable(batch, results)
        ready: asyncio.Queue[tuple[_Job, Letter] | None] = asyncio.Queue()
        senders = min(self._config.concurrency, len(jobs))

        async def sender() -> None:
            # Takes the next letter only while not stopping: on stop, the letters never
            # taken are released below rather than sent after the signal.
            while (item := await ready.get()) is not None and not self._stopping:
                async with self._slots.held(urgent=in_process):
                    await self._send(*item, results)

        rendering = asyncio.ensure_future(self._render(jobs, results, ready, senders, in_process))
        try:
            for crash in await asyncio.gather(
                rendering, *(sender() for _ in range(senders)), return_exceptions=True
            ):
                if isinstance(crash, Exception):
                    log.error("dispatch.batch_step_crashed", exc_info=crash)
        finally:
            rendering.cancel()
            # Written even if this task is cancelled: a lost outcome means a duplicate later.
            # Messages whose send never began go back to the queue; those cut off mid-send
            # keep their lease and are retried, on record, when it expires.
            settled = results.started | {outcome.id for outcome in results.failed}
            results.released.extend(job.message.id for job in jobs if job.message.id not in settled)
            try:
                await asyncio.shield(self._write(results))
            finally:
                self._held -= ids
        return len(results)

    async def _write(self, results: _Results) -> None:
        """Record the outcomes, trying again while the database is unreachable.

        The mail has gone out by now; if its outcome is not written, the lease
        expires and the whole batch is sent again. So a database restart or a
        dropped connection is waited out, with backoff, for up to half the
        lease; past that the error is raised and the lease takeover (recorded
        as ``lease_expired``) is the fallback.
        """
        delay = _RECORD_FIRST_DELAY
        deadline = time.monotonic() + self._config.lease.total_seconds() / 2
        while True:
            try:
                await asyncio.to_thread(self._record, results)
                return
            except errors.ServiceUnavailable:
                if time.monotonic() + delay > deadline:
                    log.error("dispatch.record_failed messages=%d", len(results))
                    raise
                log.warning("dispatch.record_retry messages=%d delay=%.2f", len(results), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECORD_LONGEST_DELAY)

    def _sendable(self, batch: list[_Job], results: _Results) -> list[_Job]:
        """The jobs to render; the blocked ones are recorded as suppressed instead."""
        sendable = []
        for job in batch:
            if job.blocked is not None or job.recipient is None:
                results.suppressed.append(
                    outbox.Outcome(job.message.id, job.message.attempt, detail=job.blocked)
                )
            else:
                sendable.append(job)
        return sendable

    async def _render(
        self,
        jobs: list[_Job],
        results: _Results,
        ready: asyncio.Queue[tuple[_Job, Letter] | None],
        senders: int,
        in_process: bool,
    ) -> None:
        """Render in claim order, a chunk at a time, handing each letter to the senders.

        The render pool is given every chunk at once and works ahead; in this
        process the chunks are made one after another in a thread.
        """
        later = range(FIRST_CHUNK, len(jobs), RENDER_CHUNK)
        chunks = [jobs[:FIRST_CHUNK]] if jobs else []
        chunks += [jobs[start : start + RENDER_CHUNK] for start in later]
        pool = None if in_process else self._pool
        now = self._clock.now()
        ahead: list[asyncio.Future[list[Letter | Unrendered]]] = []
        if pool is not None:
            ahead = [pool.submit([_item(job) for job in chunk], now) for chunk in chunks]
        try:
            for index, chunk in enumerate(chunks):
                if self._stopping:
                    break
                made = await (ahead[index] if ahead else asyncio.to_thread(self._assemble, chunk))
                for job, letter in zip(chunk, made, strict=True):
                    if isinstance(letter, Letter):
                        ready.put_nowait((job, letter))
                    else:
                        self._render_failed(job, letter, results)
        finally:
            for future in ahead:
                future.cancel()
            for _ in range(senders):
                ready.put_nowait(None)

    def _assemble(self, chunk: list[_Job]) -> list[Letter | Unrendered]:
        return [assemble_or_reason(self._assembler, *_item(job)) for job in chunk]

    def _render_failed(self, job: _Job, unrendered: Unrendered, results: _Results) -> None:
        """Fail the message for good, logging where its template broke (see ``Unrendered``)."""
        message = job.message
        log.warning(
            "dispatch.render_failed message=%s kind=%s reason=%s %s",
            message.id,
            message.kind,
            FailureReason.RENDER.value,
            unrendered.summary,
        )
        detail = privacy.redact_addresses(unrendered.detail)[:2000]
        results.failed.append(
            outbox.Outcome(message.id, message.attempt, detail=detail, failure=FailureReason.RENDER)
        )
        self._count_failure(message, FailureReason.RENDER)

    async def _send(self, job: _Job, letter: Letter, results: _Results) -> None:
        if self._stopping:
            return
        message = job.message
        results.started.add(message.id)
        envelope = letter.envelope
        started = time.perf_counter()
        try:
            reply = await self._transport.send(envelope.sender, envelope.recipients, envelope.data)
        except errors.DeliveryError as exc:
            self._failed(message, exc, results)
            if job.recipient is not None and is_bad_mailbox(exc):
                results.bounced.append(job.recipient.email_index)
            self._observe(message, "failed", started)
            return
        except Exception as exc:  # unclassified: fail this message, keep the batch's outcomes
            log.exception("dispatch.send_crashed message=%s", message.id)
            failure = errors.PermanentDeliveryError(f"unexpected {type(exc).__name__}: {exc}")
            self._failed(message, failure, results, FailureReason.UNEXPECTED)
            self._observe(message, "failed", started)
            return
        results.sent.append(
            outbox.Outcome(
                message.id,
                message.attempt,
                detail=reply[:500],
                smtp_code=250,
                message_id=envelope.message_id,
                locale=letter.locale,
            )
        )
        self._observe(message, "sent", started)

    def _failed(
        self,
        message: outbox.Claimed,
        exc: errors.DeliveryError,
        results: _Results,
        unexpected: FailureReason | None = None,
    ) -> None:
        """Retry a transient failure later; fail the message for good when that will not help.

        ``unexpected`` names the failure when the error was not the
        transport's own classification.
        """
        now = self._clock.now()
        retry_at = retry.next_attempt(
            message.attempt,
            exc,
            message.first_attempt_at,
            now,
            max_age=self._config.retry_max_age,
            jitter=self._random.random(),
        )
        detail = privacy.redact_addresses(str(exc))
        reason = None
        if retry_at is None:
            reason = unexpected or (
                FailureReason.SMTP_PERMANENT if exc.permanent else FailureReason.RETRIES_EXHAUSTED
            )
        outcome = outbox.Outcome(
            message.id,
            message.attempt,
            detail=detail[:2000],
            smtp_code=exc.smtp_code,
            retry_at=retry_at,
            failure=reason,
        )
        if reason is not None:
            # The reply as the server wrote it, on one line, its addresses redacted: servers
            # echo the recipient ("550 5.1.1 <jan@…>: unknown user").
            reply = _WHITESPACE.sub(" ", detail).strip()[:_REPLY_IN_LOG]
            log.warning(
                "dispatch.failed message=%s kind=%s reason=%s code=%s reply=%r",
                message.id,
                message.kind,
                reason.value,
                exc.smtp_code,
                reply,
            )
            results.failed.append(outcome)
            self._count_failure(message, reason)
        else:
            log.info("dispatch.retrying message=%s code=%s", message.id, exc.smtp_code)
            results.retrying.append(outcome)

    def _count_failure(self, message: outbox.Claimed, reason: FailureReason) -> None:
        if self._on_failure is not None:
            self._on_failure(message.kind, reason)

    def _observe(self, message: outbox.Claimed, outcome: str, started: float) -> None:
        if self._on_outcome is not None:
            self._on_outcome(message.category, outcome, time.perf_counter() - started)

    def _record(self, results: _Results) -> None:
        now = self._clock.now()
        owner = self._config.owner
        with self._db.transaction() as session:
            outbox.mark_sent(session, owner, results.sent, now)
            outbox.mark_retrying(session, owner, results.retrying, now)
            outbox.mark_failed(session, owner, results.failed, now)
            outbox.mark_suppressed(session, owner, results.suppressed, now)
            outbox.release(session, owner, results.released, now)
            for email_index in results.bounced:
                suppressions.add(
                    session, email_index, SuppressionReason.HARD_BOUNCE, "SMTP 5.1.x", now
                )
            if self._config.webhooks:
                webhooks.add_for_messages(session, "message.sent", _ids(results.sent), now)
                webhooks.add_for_messages(session, "message.failed", _ids(results.failed), now)


def is_bad_mailbox(exc: errors.DeliveryError) -> bool:
    """A permanent reply about the recipient's address (5.1.x): that address bounces hard."""
    return exc.permanent and _BAD_MAILBOX.match(exc.message.strip()) is not None


def _ids(outcomes: list[outbox.Outcome]) -> list[str]:
    return [outcome.id for outcome in outcomes]


def _item(job: _Job) -> Item:
    assert job.recipient is not None, "blocked jobs are never rendered"
    return (job.message.id, job.message.kind, job.recipient, job.context)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if task.cancelled() or task.exception() is None:
        return
    if isinstance(task.exception(), errors.ServiceUnavailable):
        log.warning("dispatch.database_unavailable")  # the next poll tries again
        return
    log.error("dispatch.crashed", exc_info=task.exception())
