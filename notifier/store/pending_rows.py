"""Intake's rows of one group-commit transaction, waiting to be written together.

An executemany costs SQLAlchemy a third of a statement a row, so the events,
customers and messages a group accepts are held here and written per table.
The state lives in ``session.info``: ``begin`` puts it there for a
transaction, ``of`` finds it again. With it, what intake reads per event is
read once per group: the answers of the event ids, and the review pairs of
the orders and customers (``ReviewPairs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store import customers, events, models, orders, outbox

_KEY = "notifier.pending_rows"


@dataclass
class ReviewPairs:
    """What the review cap asks of the outbox, for the orders and customers of one group.

    ``orders``: which of them have a pair (cancelled or not); ``last_at``:
    each customer's latest pair not cancelled (None for none). Both are read
    at the start of the transaction (``look_up``) and kept up to date from
    what the group's events queue: a pair waits in ``new_orders`` and
    ``new_last_at`` with its rows, and joins the rest only when they are
    written, so a pair undone with its event's savepoint does not count.
    A customer not in either map is unknown (after ``forget_customers``) and
    must be looked up again.

    With several writers: on SQLite the group's transaction holds the write
    lock (``BEGIN IMMEDIATE``) from the lookup to the commit, so nothing is
    missed. On PostgreSQL ``begin`` first takes the customers' review locks
    (``outbox.lock_review_customers``), held to the commit: a process
    deciding for the same customer waits, then reads what this one wrote.
    An order's pair is decided with its customer's, so one order delivered
    twice is covered too (unless its two events name different customers).
    """

    orders: set[str] = field(default_factory=set)
    last_at: dict[str, datetime | None] = field(default_factory=dict)
    new_orders: set[str] = field(default_factory=set)
    new_last_at: dict[str, datetime] = field(default_factory=dict)

    def look_up(
        self, session: Session, customer_ids: Sequence[str], order_ids: Sequence[str]
    ) -> None:
        """Read the pairs of these customers and orders: one query each, none for none."""
        self.last_at.update(outbox.last_review_pairs_at(session, customer_ids))
        self.orders |= outbox.orders_with_review_pair(session, order_ids)

    def order_has_pair(self, order_id: str) -> bool:
        return order_id in self.orders or order_id in self.new_orders

    def knows(self, customer_id: str) -> bool:
        return customer_id in self.new_last_at or customer_id in self.last_at

    def last_pair_at(self, customer_id: str) -> datetime | None:
        """The customer's latest pair not cancelled; None for none (``knows`` must hold)."""
        queued = self.new_last_at.get(customer_id)
        return queued if queued is not None else self.last_at[customer_id]

    def queue(self, message: outbox.NewMessage) -> None:
        """Count ``message`` if it is a review pair's first mail: its rows wait to be written.

        An unknown customer stays unknown: the lookup that follows sees the
        pair, since the customer's pending rows are written before it.
        """
        if message.kind != models.REVIEW_PAIR_KIND:
            return
        if message.order_id is not None:
            self.new_orders.add(message.order_id)
        if self.knows(message.customer_id):
            last = self.last_pair_at(message.customer_id)
            due = message.send_after if last is None else max(last, message.send_after)
            self.new_last_at[message.customer_id] = due

    def keep_new(self) -> None:
        """The queued pairs' rows were written: they count from now on."""
        self.orders |= self.new_orders
        self.last_at.update(self.new_last_at)

    def drop_new(self) -> None:
        self.new_orders.clear()
        self.new_last_at.clear()

    def forget_customers(self) -> None:
        """Mail was cancelled in the transaction: a customer's latest pair may count no more."""
        self.last_at.clear()
        self.new_last_at.clear()


@dataclass
class PendingRows:
    """Intake's state in one transaction of a group commit (in ``session.info``).

    ``answers``: the answers of event ids seen before the group, from one
    query, and of those written in it since; ``reviews`` likewise for the
    review pairs of its orders and customers; ``snapshots`` likewise for the
    orders its events name (a later event of an order in the same group sees
    the earlier one's snapshot, pending or written). The rows of the events accepted
    since the last ``write`` wait here with their answers, to be written
    together: an executemany costs SQLAlchemy a third of a statement a row.
    Deferring them is safe because intake reads none of them back but the
    answers and snapshots (kept here) and the outbox (written out before it
    is read).
    """

    answers: dict[str, dict[str, Any]]
    reviews: ReviewPairs
    snapshots: dict[orders.Key, dict[str, Any]] = field(default_factory=dict)
    new_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_snapshots: dict[orders.Key, orders.Snapshot] = field(default_factory=dict)
    records: list[events.Record] = field(default_factory=list)
    details: list[customers.Details] = field(default_factory=list)
    queued: list[tuple[outbox.NewMessage, datetime]] = field(default_factory=list)

    def answer(self, event_id: str) -> dict[str, Any] | None:
        """The answer this event id got already, before the group or earlier in it."""
        earlier = self.answers.get(event_id)
        return earlier if earlier is not None else self.new_answers.get(event_id)

    def look_up_orders(self, session: Session, sealer: Sealer, keys: Sequence[orders.Key]) -> None:
        """Read the snapshots of these orders, one query (after ``begin``'s review locks,
        which must come before any row lock)."""
        self.snapshots.update(orders.snapshots(session, sealer, keys))

    def snapshot(self, key: orders.Key) -> dict[str, Any] | None:
        """The order as known: from an event earlier in the group, or as stored before it."""
        pending = self.new_snapshots.get(key)
        return pending.order if pending is not None else self.snapshots.get(key)

    def add(
        self,
        event: events.Record,
        customer: customers.Details,
        queued: list[tuple[outbox.NewMessage, datetime]],
        snapshot: orders.Snapshot | None = None,
    ) -> None:
        if snapshot is not None:
            self.new_snapshots[snapshot.key] = snapshot
        self.records.append(event)
        self.details.append(customer)
        self.queued += queued
        self.new_answers[event.id] = event.response
        for message, _ in queued:
            self.reviews.queue(message)

    def write(self, session: Session, sealer: Sealer) -> None:
        """Write the pending rows: events first, customers in order, orders, then messages.

        Whether this succeeds or fails, nothing stays pending; only on success
        do the new answers join ``answers``, the new snapshots ``snapshots``,
        and the new pairs ``reviews``
        (a failure undoes the rows).
        """
        try:
            events.record_all(session, self.records)
            customers.upsert_all(session, sealer, self.details)
            orders.upsert_all(session, sealer, list(self.new_snapshots.values()))
            outbox.add_queued(session, sealer, self.queued)
            self.answers.update(self.new_answers)
            self.snapshots.update((key, new.order) for key, new in self.new_snapshots.items())
            self.reviews.keep_new()
        finally:
            self.new_answers.clear()
            self.new_snapshots.clear()
            self.reviews.drop_new()
            self.records.clear()
            self.details.clear()
            self.queued.clear()


def begin(
    session: Session,
    event_ids: Sequence[str],
    review_customers: Sequence[str],
    review_orders: Sequence[str],
) -> None:
    """Start this transaction's rows with what intake reads of the past, in one query each.

    The answers of ``event_ids`` seen before, and the review pairs of
    ``review_customers`` and ``review_orders`` (``ReviewPairs``); the
    orders' snapshots follow with ``PendingRows.look_up_orders``. A redone
    group starts a new transaction and so asks again: nothing of the
    attempt rolled back stays.
    """
    reviews = ReviewPairs()
    outbox.lock_review_customers(session, review_customers)
    reviews.look_up(session, review_customers, review_orders)
    session.info[_KEY] = PendingRows(events.answers(session, list(event_ids)), reviews)


def of(session: Session) -> PendingRows:
    """The rows ``begin`` started in this transaction."""
    rows: PendingRows = session.info[_KEY]
    return rows
