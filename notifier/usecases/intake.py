"""Accepting shop events: what one event writes in a group commit, and what follows the commit.

``notifier.store.group_commit`` is the mechanism (one writer thread, one transaction per
batch); this is its use for events: each event is checked against the
answers given before, planned by ``flows.events``, and leaves its rows
pending for one write per table; after the commit each new event is logged
and the dispatcher is woken once for the batch.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifier import errors, phones
from notifier.crypto import Sealer
from notifier.flows import events as event_flows
from notifier.flows import kinds
from notifier.flows import orders as order_flows
from notifier.schemas import CustomerIn, EventIn, EventOut, MessageOut, PhoneFree
from notifier.settings import Settings
from notifier.store import customers, events, orders, outbox, pending_rows
from notifier.store.db import Database, Session
from notifier.store.group_commit import GroupCommit
from notifier.usecases.views import queued_out

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """The answer to an idempotent request; ``created`` is False for a repeat.

    ``body`` is the JSON the HTTP API answers with; ``event`` and ``message``
    read it as the typed answer of ``handle_event`` and ``send_message``.
    """

    body: dict[str, Any]
    created: bool

    @property
    def event(self) -> EventOut:
        """``handle_event``'s answer: the event id and the messages it queued, as they stand."""
        return EventOut.model_validate(self.body)

    @property
    def message(self) -> MessageOut:
        """``send_message``'s answer: the message queued (or, for a repeat, as it is now)."""
        return MessageOut.model_validate(self.body)


@dataclass(frozen=True)
class Arrival:
    """An event as handed to the writer, with the time it arrived."""

    event: EventIn
    now: datetime


@dataclass(frozen=True)
class Intake:
    """What one event did in a group commit: the caller's answer, and what it queued."""

    event: EventIn
    accepted: Accepted
    queued: list[outbox.NewMessage]
    now: datetime
    cancelled: int = 0


class EventIntake(GroupCommit[Arrival, Intake]):
    """The group commit of shop events: submit an ``Arrival``, get its ``Intake``.

    ``wake`` is called after each commit with the batch's messages due at
    once (possibly none).
    """

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        settings: Settings,
        wake: Callable[[list[outbox.NewMessage]], None],
    ) -> None:
        super().__init__(
            database,
            self._accept,
            self._committed,
            name="notifier-intake",
            order=_customer_of,
            prepare=self._look_up,
            flush=self._write_pending,
        )
        self.sealer = sealer
        self.settings = settings
        self.wake = wake

    def earlier_answer(self, event_id: str) -> dict[str, Any]:
        """The answer an event id got before: for a ``Duplicate`` raced in from elsewhere."""
        with self.database.transaction() as session:
            earlier = events.answer(session, event_id)
        if earlier is None:
            raise errors.ServiceUnavailable(
                "a concurrent request with this id is still in progress"
            )
        return earlier

    def _accept(self, session: Session, arrival: Arrival) -> Intake:
        """One event in a group commit; run again if the batch is redone: no logging.

        Its rows wait in the transaction's ``PendingRows`` for ``_write_pending``
        (``GroupCommit``'s ``flush``); handing them over is its last step, so an
        event that fails leaves none behind.
        """
        pending = pending_rows.of(session)
        event, now = arrival.event, arrival.now
        earlier = pending.answer(event.id)
        if earlier is not None:
            return Intake(event, Accepted(earlier, created=False), [], now)
        occurred_at = event.occurred_at or now
        order_id = event.order.id if event.order else None
        snapshot = None
        if event.order is not None:
            key = (event.customer.id, event.order.id)
            merged = order_flows.merge(pending.snapshot(key), event.order)
            snapshot = orders.Snapshot(*key, merged, now)
        history = event_flows.ReviewHistory()
        reviewed = self._reviewed_order(event)
        if reviewed is not None:
            history = self._review_history(session, pending, event.customer.id, reviewed)
        plan = event_flows.plan(
            event,
            event_flows.Moment(now, occurred_at),
            self.settings,
            history,
            snapshot.order if snapshot else None,
        )
        queued = [
            outbox.NewMessage(
                id=_new_message_id(),
                customer_id=event.customer.id,
                kind=planned.kind,
                category=kinds.get(planned.kind).category,
                priority=kinds.get(planned.kind).priority,
                send_after=planned.send_after,
                context=planned.context,
                created_at=now,
                event_id=event.id,
                order_id=order_id,
            )
            for planned in plan.messages
        ]
        body = EventOut(
            event_id=event.id,
            messages=[queued_out(message) for message in queued],
        ).model_dump(mode="json")
        cancelled: list[str] = []
        if plan.cancel_order is not None:
            self._write_pending_messages(session, pending, None, plan.cancel_order)
            cancelled = outbox.cancel_for_order(
                session, plan.cancel_order, f"cancelled by {event.type.value}", now
            )
            if cancelled:
                pending.reviews.forget_customers()
        pending.add(
            events.Record(
                event.id, event.type.value, event.customer.id, order_id, occurred_at, now, body
            ),
            customer_details(event.customer, self.settings, now),
            queued,
            snapshot,
        )
        return Intake(event, Accepted(body, created=True), queued, now, len(cancelled))

    def _look_up(self, session: Session, arrivals: Sequence[Arrival]) -> None:
        """Before a group's events (``GroupCommit``'s ``prepare``): what they need of the past.

        The answers of the event ids seen before, the review pairs of the
        orders and customers whose events may queue one, and the snapshots
        of the orders the events name: one query each for the group, where
        each event used to ask for its own.
        """
        reviewed = [
            (arrival.event.customer.id, order_id)
            for arrival in arrivals
            if (order_id := self._reviewed_order(arrival.event)) is not None
        ]
        pending_rows.begin(
            session,
            [arrival.event.id for arrival in arrivals],
            [customer_id for customer_id, _ in reviewed],
            [order_id for _, order_id in reviewed],
        )
        pending_rows.of(session).look_up_orders(
            session,
            self.sealer,
            [
                (arrival.event.customer.id, arrival.event.order.id)
                for arrival in arrivals
                if arrival.event.order is not None
            ],
        )

    def _reviewed_order(self, event: EventIn) -> str | None:
        """The order whose review pair ``event`` may queue, if it may queue one."""
        order_id = event.order.id if event.order else None
        if order_id and event_flows.reviews_triggered_by(event.type, self.settings):
            return order_id
        return None

    def _review_history(
        self, session: Session, pending: pending_rows.PendingRows, customer_id: str, order_id: str
    ) -> event_flows.ReviewHistory:
        """The review cap's view of the order and the customer, from the group's lookup.

        A customer forgotten after a cancellation in the group is looked up
        again, with their pending mail written first so that the query sees it.
        """
        reviews = pending.reviews
        # An order with its pair queued gets none again, whenever the last pair was.
        if reviews.order_has_pair(order_id):
            return event_flows.ReviewHistory(order_has_pair=True)
        if not reviews.knows(customer_id):
            self._write_pending_messages(session, pending, customer_id, None)
            reviews.look_up(session, [customer_id], [])
        return event_flows.ReviewHistory(last_pair_at=reviews.last_pair_at(customer_id))

    def _write_pending(self, session: Session) -> None:
        """Write the rows the group's events left pending (``GroupCommit``'s ``flush``)."""
        pending_rows.of(session).write(session, self.sealer)

    def _write_pending_messages(
        self,
        session: Session,
        pending: pending_rows.PendingRows,
        customer_id: str | None,
        order_id: str | None,
    ) -> None:
        """Before intake reads the customer's or the order's messages: those pending go first.

        Intake's reads of the outbox select by customer or by order, so
        pending messages of others cannot change what they find.
        """
        if any(
            (order_id is not None and new.order_id == order_id) or new.customer_id == customer_id
            for new in pending.queued
        ):
            pending.write(session, self.sealer)

    def _committed(self, batch: Sequence[Intake]) -> None:
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
        self.wake(due)


class DroppedPhones:
    """What becomes of the phone fields a request lost on arrival (``notifier.phones``).

    Each is counted (``count``, by the section it was in: ``order``,
    ``data``, ``customer``, ``context``) and each new path shape is logged
    once per process, by path and request id, never by value, so a shop
    that sends a phone with every order warns once instead of flooding the log.
    """

    def __init__(self, count: Callable[[str], None]) -> None:
        self._count = count
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def note(self, request: PhoneFree, request_id: str) -> None:
        for path in request.dropped_phones:
            self._count(phones.section(path))
            shape = phones.shape(path)
            with self._lock:
                first = shape not in self._logged
                self._logged.add(shape)
            if first:
                log.warning("intake.phone_dropped path=%s request=%s", shape, request_id)


def customer_details(customer: CustomerIn, settings: Settings, now: datetime) -> customers.Details:
    """The customer as stored: the shop's details, the default locale if it sent none."""
    locale = customer.locale or settings.default_locale
    return customers.Details(
        customer.id,
        str(customer.email),
        customer.name,
        locale,
        now,
        first_name=customer.first_name,
        tags=customer.tags,
    )


def _customer_of(arrival: Arrival) -> str:
    """Events are written in customer order: see ``GroupCommit``'s ``order``."""
    return arrival.event.customer.id


def _new_message_id() -> str:
    return f"msg_{secrets.token_urlsafe(12)}"
