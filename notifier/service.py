"""``Notifier``: the composition root that every adapter (HTTP, CLI, scheduler) calls.

It wires settings, store, mail and delivery together and offers the public
operations as plain methods, so a backend may embed the engine in-process
exactly as the HTTP API uses it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from notifier import errors, keyring
from notifier.choices import Choices
from notifier.clock import Clock, SystemClock
from notifier.crypto import Sealer
from notifier.delivery.capture import CaptureServer, Inbox
from notifier.delivery.dispatcher import DispatchConfig, Dispatcher, Transport
from notifier.delivery.transport import SmtpConfig, SmtpTransport
from notifier.flows import events as event_flows
from notifier.flows import kinds
from notifier.intake import GroupCommit
from notifier.mail.assembly import Assembler
from notifier.mail.pool import RenderPool, default_processes
from notifier.metrics import Metrics
from notifier.newsletters import Newsletters
from notifier.privacy import Privacy
from notifier.schemas import CustomerIn, EventIn, EventOut, MessageIn, MessageOut
from notifier.settings import Settings
from notifier.store import customers, events, outbox, pending_rows
from notifier.store.db import Database, Session
from notifier.store.models import Message

log = logging.getLogger(__name__)
INBOX_FOLDER = ".notifier-inbox"


@dataclass(frozen=True)
class Accepted:
    """The answer to an idempotent request; ``created`` is False for a repeat."""

    body: dict[str, Any]
    created: bool


@dataclass(frozen=True)
class _Arrival:
    event: EventIn
    now: datetime


@dataclass(frozen=True)
class _Intake:
    """What one event did in a group commit: the caller's answer, and what it queued."""

    event: EventIn
    accepted: Accepted
    queued: list[outbox.NewMessage]
    now: datetime
    cancelled: int = 0


@dataclass(frozen=True)
class QueueDepth:
    status: str
    category: str
    count: int


@dataclass(frozen=True)
class StatusReport:
    depth: list[QueueDepth]
    recent_errors: list[MessageOut]


class Notifier:
    """The engine. Construct once per process; safe to call from several threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        transport: Transport | None = None,
        worker_name: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        keys = keyring.resolve(settings)
        self.secret_key = keys.secret_keys[0]
        self.database = Database(settings.database_url)
        self.sealer = Sealer(keys.encryption_keys, keys.secret_keys[-1])
        self.assembler = Assembler.from_settings(settings, keys.secret_keys, self.clock)
        self.renderer = self.assembler.renderer
        self.preference_tokens = self.assembler.preference_tokens
        self.confirm_tokens = self.assembler.confirm_tokens
        processes = settings.render_processes
        if processes is None:
            processes = default_processes()
        self.render_pool = (
            RenderPool(settings, keys.secret_keys, processes, settings.render_timeout)
            if processes
            else None
        )
        self.capture: CaptureServer | None = None
        if transport is None and settings.capture_mode:
            self.capture = CaptureServer(Inbox(settings.data_dir / INBOX_FOLDER))
            transport = SmtpTransport(SmtpConfig("127.0.0.1", self.capture.port, tls="none"))
        self.transport: Transport = transport or SmtpTransport(_smtp_config(settings))
        self.metrics = Metrics(self._queue_depth)
        owner = worker_name or f"{socket.gethostname()}:{secrets.token_hex(4)}"
        self.dispatcher = Dispatcher(
            self.database,
            self.sealer,
            self.assembler,
            self.transport,
            self.clock,
            DispatchConfig(
                owner=owner[:64],
                batch_size=settings.batch_size,
                lease=timedelta(seconds=settings.lease_seconds),
                retry_max_age=settings.retry_max_age,
                concurrency=settings.smtp_connections,
            ),
            pool=self.render_pool,
            on_outcome=self.metrics.observe,
        )

        self.choices = Choices(
            self.database,
            self.sealer,
            self.preference_tokens,
            self.confirm_tokens,
            self.clock,
            settings.consent_text_version,
        )
        self.privacy = Privacy(
            self.database, self.sealer, self.clock, timedelta(days=settings.retention_days)
        )
        self.newsletters = Newsletters(
            self.database, self.assembler, self.clock, settings, self.dispatcher.wake
        )
        self.intake: GroupCommit[_Arrival, _Intake] = GroupCommit(
            self.database,
            self._accept_event,
            self._events_committed,
            name="notifier-intake",
            order=_customer_of,
            prepare=_look_up_answers,
            flush=self._write_pending,
        )

    # -- lifecycle ---------------------------------------------------------------

    def upgrade_database(self) -> None:
        self.database.upgrade()

    async def start(self) -> None:
        """Prepare to deliver in this process: capture server, render processes, templates, loop."""
        if self.capture is not None:
            self.capture.start()
        if self.render_pool is not None:
            self.render_pool.warm()
        # The express lane renders here, and a customer waits for its first mail.
        await asyncio.to_thread(self.renderer.compile_all)
        self.dispatcher.bind(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Finish sends in flight, hand back leases, close connections, end the render processes.

        The render processes end here rather than in ``close``: ``serve`` may
        be ended by its signal right after the app's shutdown, before ``close``.
        """
        await self.dispatcher.stop()
        await self.transport.close()
        if self.capture is not None:
            self.capture.stop()
        if self.render_pool is not None:
            await asyncio.to_thread(self.render_pool.close)

    def close(self) -> None:
        """Release what the engine holds: events still waiting are committed first."""
        self.intake.close()
        if self.render_pool is not None:
            self.render_pool.close()
        self.database.dispose()

    async def dispatch_due(self) -> int:
        """Deliver every message due now; returns how many were handled."""
        return await self.dispatcher.run_once()

    async def purge_expired(self) -> int:
        """Retention: drop old finished messages' context (run by the scheduler)."""
        return await asyncio.to_thread(self.privacy.purge_expired)

    async def advance_campaigns(self) -> int:
        """Open due campaign runs and fan them out; returns how many messages were queued."""
        return await asyncio.to_thread(self.newsletters.advance)

    # -- the shop backend's operations ------------------------------------------

    def handle_event(self, data: EventIn | Mapping[str, Any]) -> Accepted:
        """Accept a shop event once: queue its mail, cancel what it cancels.

        The same event id again returns the first answer and changes nothing,
        also when both arrive at the same moment. Concurrent calls are
        committed together (see ``notifier.intake``); this returns once the
        event's transaction is on disk.
        """
        event = data if isinstance(data, EventIn) else EventIn.model_validate(data)
        try:
            return self.intake.submit(_Arrival(event, self.clock.now())).result().accepted
        except errors.Duplicate:
            return Accepted(self._earlier_answer(event.id), created=False)

    async def handle_event_async(self, data: EventIn | Mapping[str, Any]) -> Accepted:
        """``handle_event`` for an event loop: waits for the commit without holding a thread."""
        event = data if isinstance(data, EventIn) else EventIn.model_validate(data)
        try:
            intake = await asyncio.wrap_future(
                self.intake.submit(_Arrival(event, self.clock.now()))
            )
        except errors.Duplicate:
            earlier = await asyncio.to_thread(self._earlier_answer, event.id)
            return Accepted(earlier, created=False)
        return intake.accepted

    def _accept_event(self, session: Session, arrival: _Arrival) -> _Intake:
        """One event in a group commit; run again if the batch is redone: no logging.

        Its rows wait in the transaction's ``PendingRows`` for ``_write_pending``
        (``GroupCommit``'s ``flush``); handing them over is its last step, so an
        event that fails leaves none behind.
        """
        pending = pending_rows.of(session)
        event, now = arrival.event, arrival.now
        occurred_at = event.occurred_at or now
        earlier = pending.answer(event.id)
        if earlier is not None:
            return _Intake(event, Accepted(earlier, created=False), [], now)
        order_id = event.order.id if event.order else None
        history = event_flows.ReviewHistory()
        if event_flows.reviews_triggered_by(event.type, self.settings) and order_id:
            self._write_pending_messages(session, pending, event.customer.id, order_id)
            # An order with its pair queued gets none again, whenever the last pair was.
            if outbox.order_has_review_pair(session, order_id):
                history = event_flows.ReviewHistory(order_has_pair=True)
            else:
                last_pair_at = outbox.last_review_pair_at(session, event.customer.id)
                history = event_flows.ReviewHistory(last_pair_at=last_pair_at)
        plan = event_flows.plan(event, occurred_at, self.settings, history)
        queued = [
            outbox.NewMessage(
                id=_new_message_id(),
                customer_id=event.customer.id,
                kind=planned.kind,
                category=kinds.get(planned.kind).category,
                priority=kinds.get(planned.kind).priority,
                send_after=planned.send_after,
                context=planned.context,
                event_id=event.id,
                order_id=order_id,
            )
            for planned in plan.messages
        ]
        body = EventOut(
            event_id=event.id,
            messages=[_queued_out(message, now) for message in queued],
        ).model_dump(mode="json")
        cancelled: list[str] = []
        if plan.cancel_order is not None:
            self._write_pending_messages(session, pending, None, plan.cancel_order)
            cancelled = outbox.cancel_for_order(
                session, plan.cancel_order, f"cancelled by {event.type.value}", now
            )
        pending.add(
            events.Record(
                event.id, event.type.value, event.customer.id, order_id, occurred_at, now, body
            ),
            self._details(event.customer, now),
            [(message, now) for message in queued],
        )
        return _Intake(event, Accepted(body, created=True), queued, now, len(cancelled))

    def _write_pending(self, session: Session) -> None:
        """Write the rows the group's events left pending (``GroupCommit``'s ``flush``)."""
        pending_rows.of(session).write(session, self.sealer)

    def _write_pending_messages(
        self,
        session: Session,
        pending: pending_rows.PendingRows,
        customer_id: str | None,
        order_id: str,
    ) -> None:
        """Before intake reads the customer's or the order's messages: those pending go first.

        Intake's reads of the outbox select by customer or by order, so
        pending messages of others cannot change what they find.
        """
        if any(
            new.order_id == order_id or new.customer_id == customer_id for new, _ in pending.queued
        ):
            pending.write(session, self.sealer)

    def _events_committed(self, batch: Sequence[_Intake]) -> None:
        """After a group commit: one log line per new event, one wake-up for the batch."""
        due: list[outbox.NewMessage] = []
        for intake in batch:
            if not intake.accepted.created:
                continue
            event = intake.event
            log.info(
                "event.accepted event=%s type=%s messages=%d",
                event.id,
                event.type.value,
                len(intake.queued),
            )
            if intake.cancelled:
                log.info("event.cancelled_messages event=%s count=%d", event.id, intake.cancelled)
            due += (message for message in intake.queued if message.send_after <= intake.now)
        self._wake_for(due)

    def send_message(self, data: MessageIn | Mapping[str, Any]) -> Accepted:
        """Queue an ad-hoc message of any kind; its id is the idempotency key.

        The context is rendered once on the way in, so a context the template
        cannot use is refused now (422) rather than failing later.
        """
        request = data if isinstance(data, MessageIn) else MessageIn.model_validate(data)
        kind = kinds.get(request.kind)
        now = self.clock.now()
        self._trial_render(request, kind)
        due = event_flows.scheduled_time(kind.name, max(request.send_at or now, now), self.settings)
        new = outbox.NewMessage(
            id=request.id,
            customer_id=request.to.id,
            kind=kind.name,
            category=kind.category,
            priority=kind.priority,
            send_after=due,
            context=request.context,
            order_id=_order_id(request.context),
        )
        try:
            with self.database.transaction() as session:
                existing = outbox.get(session, request.id)
                if existing is not None:
                    return Accepted(_message_out(existing).model_dump(mode="json"), created=False)
                self._upsert_customer(session, request.to, now)
                outbox.add(session, self.sealer, [new], now)
        except errors.Duplicate:
            return Accepted(self.get_message(request.id).model_dump(mode="json"), created=False)
        self._wake_if_due([new], now)
        return Accepted(_queued_out(new, now).model_dump(mode="json"), created=True)

    def get_message(self, message_id: str) -> MessageOut:
        with self.database.transaction() as session:
            row = outbox.get(session, message_id)
            if row is None:
                raise errors.NotFound(f"no message {message_id!r}")
            return _message_out(row)

    def cancel_message(self, message_id: str) -> MessageOut:
        with self.database.transaction() as session:
            return _message_out(outbox.cancel(session, message_id, self.clock.now()))

    def customer_messages(self, customer_id: str) -> list[MessageOut]:
        """The customer's message history, newest first, for customer service."""
        with self.database.transaction() as session:
            return [_message_out(row) for row in outbox.history(session, customer_id)]

    def _queue_depth(self) -> list[tuple[str, str, int]]:
        with self.database.transaction() as session:
            return outbox.depth(session)

    def status(self) -> StatusReport:
        with self.database.transaction() as session:
            depth = [QueueDepth(*row) for row in outbox.depth(session)]
            recent = [_message_out(row) for row in outbox.recent_errors(session)]
        return StatusReport(depth, recent)

    async def send_test(
        self, kind: str, to_email: str, locale: str, context: Mapping[str, Any]
    ) -> str:
        """Render ``kind`` with ``context`` and send it to ``to_email`` now, marked as a test.

        Nothing is queued or recorded; returns the Message-ID. A refusal by
        the server raises ``DeliveryError``.
        """
        recipient = customers.Recipient("test", to_email, None, locale)
        letter = self.assembler.assemble(
            f"test-{secrets.token_hex(8)}", kind, recipient, dict(context), test=True
        )
        envelope = letter.envelope
        try:
            await self.transport.send(envelope.sender, envelope.recipients, envelope.data)
        finally:
            await self.transport.close()
        return envelope.message_id

    # -- helpers -------------------------------------------------------------------

    def _upsert_customer(self, session: Session, customer: CustomerIn, now: datetime) -> None:
        customers.upsert_all(session, self.sealer, [self._details(customer, now)])

    def _details(self, customer: CustomerIn, now: datetime) -> customers.Details:
        locale = customer.locale or self.settings.default_locale
        return customers.Details(customer.id, str(customer.email), customer.name, locale, now)

    def _earlier_answer(self, event_id: str) -> dict[str, Any]:
        with self.database.transaction() as session:
            earlier = events.answer(session, event_id)
        if earlier is None:
            raise errors.ServiceUnavailable(
                "a concurrent request with this id is still in progress"
            )
        return earlier

    def _trial_render(self, request: MessageIn, kind: kinds.Kind) -> None:
        recipient = customers.Recipient(
            request.to.id,
            str(request.to.email),
            request.to.name,
            request.to.locale or self.settings.default_locale,
        )
        try:
            self.assembler.assemble(request.id, kind.name, recipient, request.context)
        except errors.TemplateError as exc:
            raise errors.InvalidInput(
                f"the {kind.name} template cannot use it: {exc}", "context"
            ) from exc

    def _wake_if_due(self, queued: list[outbox.NewMessage], now: datetime) -> None:
        self._wake_for([message for message in queued if message.send_after <= now])

    def _wake_for(self, due: list[outbox.NewMessage]) -> None:
        """Wake the dispatcher for mail due now, naming the urgent ones for its express lane."""
        if due:
            self.dispatcher.wake(
                express=[message.id for message in due if kinds.get(message.kind).urgent]
            )


def _look_up_answers(session: Session, arrivals: Sequence[_Arrival]) -> None:
    """Before a group's events: the answers of those seen before (``GroupCommit``'s ``prepare``)."""
    pending_rows.begin(session, [arrival.event.id for arrival in arrivals])


def _customer_of(arrival: _Arrival) -> str:
    """Events are written in customer order: see ``GroupCommit``'s ``order``."""
    return arrival.event.customer.id


def _new_message_id() -> str:
    return f"msg_{secrets.token_urlsafe(12)}"


def _order_id(context: Mapping[str, Any]) -> str | None:
    order = context.get("order")
    value = order.get("id") if isinstance(order, Mapping) else None
    return str(value)[:100] if value is not None else None


def _queued_out(message: outbox.NewMessage, now: datetime) -> MessageOut:
    return MessageOut(
        id=message.id,
        kind=message.kind,
        category=message.category,
        status="scheduled",
        send_after=message.send_after.astimezone(UTC),
        created_at=now,
        order_id=message.order_id,
    )


def _message_out(row: Message) -> MessageOut:
    return MessageOut(
        id=row.id,
        kind=row.kind,
        category=row.category,
        status=row.status.value,
        send_after=row.send_after,
        attempts=row.attempts,
        last_error=row.last_error,
        reason=row.reason,
        sent_at=row.sent_at,
        created_at=row.created_at,
        order_id=row.order_id,
    )


def _smtp_config(settings: Settings) -> SmtpConfig:
    assert settings.smtp_host is not None
    default_port = {"tls": 465, "starttls": 587, "none": 25}[settings.smtp_tls]
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port or default_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout=settings.smtp_timeout,
        connections=settings.smtp_connections,
        allow_plaintext=settings.smtp_allow_plaintext,
        ca_file=settings.smtp_ca_file,
    )
