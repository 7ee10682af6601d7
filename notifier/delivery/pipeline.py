"""One batch's way through the sender: claim → re-check consent → render → send → record.

A single transaction claims a batch (and beats this worker's heartbeat)
and loads its recipients. The batch is rendered in chunks, off the event
loop (in a thread, or in the render processes), and every letter is sent
as soon as its chunk is made, at most ``concurrency`` sends at once across
all batches. Each outcome goes to the ``Recorder`` the moment the server
answers, so it is committed within milliseconds, not when the batch ends.
Before each send the fence asks whether this worker still owns the
message; one taken over meanwhile is not sent.

The dispatcher decides when batches run; this module is what one does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.delivery import fence, retry, slots
from notifier.delivery.recorder import Recorder
from notifier.flows import consent, privacy
from notifier.mail.assembly import Assembler, Letter, assemble_or_reason
from notifier.mail.failure import RenderFailure
from notifier.mail.pool import Item, RenderPool
from notifier.recipient import Recipient
from notifier.store import campaigns, customers, outbox, preferences, suppressions, workers
from notifier.store.db import Database
from notifier.vocabulary import FailureReason, MessageStatus

log = logging.getLogger(__name__)
_BAD_MAILBOX = re.compile(r"^5\.1\.\d+")
_WHITESPACE = re.compile(r"\s+")
_REPLY_IN_LOG = 200
"""Characters of a server's reply a log line keeps (its addresses redacted)."""
_FORGET_WORKERS_AFTER = timedelta(days=1)
FIRST_CHUNK = 25
"""Letters in a batch's first render step: its sending begins after them, not after the batch."""
RENDER_CHUNK = 100
"""Letters in each later render step: fewer, larger steps cost less per letter (about 3 %)."""


class Transport(Protocol):
    """Delivers raw messages; raises ``DeliveryError`` subclasses, classified."""

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> str: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class DispatchConfig:
    owner: str
    batch_size: int = 200
    lease: timedelta = timedelta(seconds=60)
    heartbeat_timeout: timedelta = timedelta(seconds=10)
    """A worker silent this long is dead: its claimed messages are taken over at once."""
    retry_max_age: timedelta = timedelta(days=3)
    renew_every: timedelta | None = None
    """How often the heartbeat is written and leases of messages held renewed.

    None: a quarter of ``heartbeat_timeout`` or a third of ``lease``, whichever is shorter."""
    webhooks: bool = False
    """Record ``message.sent`` and ``message.failed`` webhook events with the outcomes."""
    concurrency: int = 8
    """Sends under way at once; match the transport's connections (``NOTIFIER_SMTP_CONNECTIONS``).

    The pipeline bounds this itself rather than leaving it to the
    transport's pool, so that on ``stop`` it knows which sends have begun:
    those finish, the rest of the batch is handed back untried.
    """


@dataclass(frozen=True)
class Job:
    """A claimed message with what sending it needs, looked up in the claim transaction."""

    message: outbox.Claimed
    recipient: Recipient | None
    context: dict[str, Any]
    blocked: str | None
    erased: bool = False
    """The customer's data key is gone: cancelled as erased, never sent."""


class Pipeline:
    """Claims and delivers batches; ``held`` (the fence) says whether a message is still ours."""

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        assembler: Assembler,
        transport: Transport,
        clock: Clock,
        config: DispatchConfig,
        recorder: Recorder,
        *,
        held: Callable[[str], Awaitable[bool]],
        stopping: Callable[[], bool],
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
        self._recorder = recorder
        self._held = held
        self._stopping = stopping
        self._pool = pool
        self._on_outcome = on_outcome
        self._on_failure = on_failure
        self._slots = slots.Slots(config.concurrency)
        self._random = random.Random()
        self._beaten = False

    def claim(self, limit: int, only: Iterable[str] | None = None) -> list[Job]:
        """Lease a batch, then look up, in a read-only transaction, all that sending it needs.

        The lease's transaction also writes this worker's heartbeat, so a
        claim is never taken for a dead worker's; it commits before the
        recipients are read and decrypted, so SQLite's write lock, which
        intake waits for, is held only for the lease. Preferences and
        suppressions are read here, at send time, so a choice made after a
        message was queued still stops it; a recipient erased in between is
        found missing and the message is not sent.
        """
        with self._db.transaction() as session:
            now = self._clock.now()
            if not self._beaten:
                workers.forget(session, now - _FORGET_WORKERS_AFTER)
            workers.beat(session, self._config.owner, now)
            self._beaten = True
            leased = outbox.lease_due(
                session,
                owner=self._config.owner,
                now=now,
                limit=limit,
                lease=self._config.lease,
                only=None if only is None else list(only),
                dead_before=now - self._config.heartbeat_timeout,
            )
        if not leased:
            return []
        with self._db.reading() as session:
            claimed = outbox.claimed(session, self._sealer, leased)
            recipients, shredded = customers.get_many(
                session, self._sealer, (c.customer_id for c in claimed)
            )
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
            erased = message.shredded or message.customer_id in shredded
            jobs.append(Job(message, None if erased else recipient, context, blocked, erased))
        return jobs

    @property
    def has_beaten(self) -> bool:
        """This worker has written a heartbeat row (which ``stop`` then deletes)."""
        return self._beaten

    async def deliver(self, batch: list[Job], *, in_process: bool = False) -> int:
        """Send each letter of the batch as soon as it is rendered; returns the outcomes recorded.

        Returns once every outcome of the batch is written. Messages whose
        send never began go back to the queue; those cut off mid-send keep
        their lease and are retried, on record, when it expires.
        """
        done = [0]
        settled: set[str] = set()
        jobs = self._sendable(batch, done)
        ready: asyncio.Queue[tuple[Job, Letter] | None] = asyncio.Queue()
        senders = min(self._config.concurrency, len(jobs))

        async def sender() -> None:
            # Takes the next letter only while not stopping: on stop, the letters never
            # taken are released below rather than sent after the signal.
            while (item := await ready.get()) is not None and not self._stopping():
                async with self._slots.held(urgent=in_process):
                    await self._send(*item, settled, done)

        rendering = asyncio.ensure_future(
            self._render(jobs, settled, done, ready, senders, in_process)
        )
        try:
            for crash in await asyncio.gather(
                rendering, *(sender() for _ in range(senders)), return_exceptions=True
            ):
                if isinstance(crash, Exception):
                    log.error("dispatch.batch_step_crashed", exc_info=crash)
        finally:
            rendering.cancel()
            self._recorder.release(
                [job.message.id for job in jobs if job.message.id not in settled]
            )
            # Written even if this task is cancelled: a lost outcome means a duplicate later.
            await asyncio.shield(self._recorder.flush())
        return done[0]

    def _sendable(self, batch: list[Job], done: list[int]) -> list[Job]:
        """The jobs to render; the blocked ones are recorded as suppressed instead."""
        sendable = []
        for job in batch:
            if job.erased:
                self._cancel_erased(job)
                done[0] += 1
            elif job.blocked is not None or job.recipient is None:
                outcome = outbox.Outcome(
                    job.message.id, job.message.attempt, detail=job.blocked, at=self._clock.now()
                )
                self._recorder.add(MessageStatus.SUPPRESSED, outcome)
                done[0] += 1
            else:
                sendable.append(job)
        return sendable

    def _cancel_erased(self, job: Job) -> None:
        """End the mail of a customer whose data key is gone: ``cancelled``, reason erased."""
        message = job.message
        log.info("dispatch.cancelled_erased message=%s", message.id)
        outcome = outbox.Outcome(
            message.id, message.attempt, detail=FailureReason.ERASED.value, at=self._clock.now()
        )
        self._recorder.add(MessageStatus.CANCELLED, outcome)
        self._count_failure(message, FailureReason.ERASED)

    async def _render(
        self,
        jobs: list[Job],
        settled: set[str],
        done: list[int],
        ready: asyncio.Queue[tuple[Job, Letter] | None],
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
        ahead: list[asyncio.Future[list[Letter | RenderFailure]]] = []
        if pool is not None:
            ahead = [pool.submit([_item(job) for job in chunk], now) for chunk in chunks]
        try:
            for index, chunk in enumerate(chunks):
                if self._stopping():
                    break
                made = await (ahead[index] if ahead else asyncio.to_thread(self._assemble, chunk))
                for job, letter in zip(chunk, made, strict=True):
                    if isinstance(letter, Letter):
                        ready.put_nowait((job, letter))
                    else:
                        settled.add(job.message.id)
                        self._render_failed(job, letter)
                        done[0] += 1
        finally:
            for future in ahead:
                future.cancel()
            for _ in range(senders):
                ready.put_nowait(None)

    def _assemble(self, chunk: list[Job]) -> list[Letter | RenderFailure]:
        return [assemble_or_reason(self._assembler, *_item(job)) for job in chunk]

    def _render_failed(self, job: Job, cause: RenderFailure) -> None:
        """Fail the message for good, logging where its template broke (see ``RenderFailure``)."""
        message = job.message
        log.warning(
            "dispatch.render_failed message=%s kind=%s reason=%s %s",
            message.id,
            cause.kind,
            FailureReason.RENDER.value,
            cause.summary,
        )
        detail = privacy.redact_addresses(cause.detail)[:2000]
        outcome = outbox.Outcome(
            message.id,
            message.attempt,
            detail=detail,
            failure=FailureReason.RENDER,
            at=self._clock.now(),
        )
        self._recorder.add(MessageStatus.FAILED, outcome)
        self._count_failure(message, FailureReason.RENDER)

    async def _send(self, job: Job, letter: Letter, settled: set[str], done: list[int]) -> None:
        await self._recorder.room()
        if self._stopping():
            return
        message = job.message
        settled.add(message.id)  # begun: from here it is sent, failed, or left to its lease
        if not await self._held(message.id):
            log.warning("dispatch.fenced message=%s", message.id)
            return
        envelope = letter.envelope
        started = time.perf_counter()

        async def check() -> None:
            if not await self._held(message.id):
                raise fence.LeaseLost(message.id)

        try:
            with fence.guarding(check):
                reply = await self._transport.send(
                    envelope.sender, envelope.recipients, envelope.data
                )
        except fence.LeaseLost:
            log.warning("dispatch.fenced message=%s", message.id)
            return
        except errors.DeliveryError as exc:
            self._failed(message, exc)
            if job.recipient is not None and is_bad_mailbox(exc):
                self._recorder.bounce(job.recipient.email_index)
            self._observe(message, "failed", started)
            done[0] += 1
            return
        except Exception as exc:  # unclassified: fail this message, keep the batch's outcomes
            log.exception("dispatch.send_crashed message=%s", message.id)
            failure = errors.PermanentDeliveryError(f"unexpected {type(exc).__name__}: {exc}")
            self._failed(message, failure, FailureReason.UNEXPECTED)
            self._observe(message, "failed", started)
            done[0] += 1
            return
        outcome = outbox.Outcome(
            message.id,
            message.attempt,
            detail=reply[:500],
            smtp_code=250,
            message_id=envelope.message_id,
            locale=letter.locale,
            at=self._clock.now(),
        )
        self._recorder.add(MessageStatus.SENT, outcome)
        self._observe(message, "sent", started)
        done[0] += 1

    def _failed(
        self,
        message: outbox.Claimed,
        exc: errors.DeliveryError,
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
            at=now,
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
            self._recorder.add(MessageStatus.FAILED, outcome)
            self._count_failure(message, reason)
        else:
            log.info("dispatch.retrying message=%s code=%s", message.id, exc.smtp_code)
            self._recorder.add(MessageStatus.RETRYING, outcome)

    def _count_failure(self, message: outbox.Claimed, reason: FailureReason) -> None:
        if self._on_failure is not None:
            self._on_failure(message.kind, reason)

    def _observe(self, message: outbox.Claimed, outcome: str, started: float) -> None:
        if self._on_outcome is not None:
            self._on_outcome(message.category, outcome, time.perf_counter() - started)


def is_bad_mailbox(exc: errors.DeliveryError) -> bool:
    """A permanent reply about the recipient's address (5.1.x): that address bounces hard."""
    return exc.permanent and _BAD_MAILBOX.match(exc.message.strip()) is not None


def _item(job: Job) -> Item:
    assert job.recipient is not None, "blocked jobs are never rendered"
    return Item(job.message.id, job.message.kind, job.recipient, job.context)
