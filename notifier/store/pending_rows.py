"""Intake's rows of one group-commit transaction, waiting to be written together.

An executemany costs SQLAlchemy a third of a statement a row, so the events,
customers and messages a group accepts are held here and written per table.
The state lives in ``session.info``: ``begin`` puts it there for a
transaction, ``of`` finds it again. With it, what intake reads per event is
read once per group: the answers of the event ids, and the review pairs of
the orders and customers (``reviews.ReviewPairs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store import customers, events, orders, outbox, reviews

_KEY = "notifier.pending_rows"


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
    reviews: reviews.ReviewPairs
    snapshots: dict[orders.Key, dict[str, Any]] = field(default_factory=dict)
    new_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_snapshots: dict[orders.Key, orders.Snapshot] = field(default_factory=dict)
    records: list[events.Record] = field(default_factory=list)
    details: list[customers.Details] = field(default_factory=list)
    queued: list[outbox.NewMessage] = field(default_factory=list)

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
        queued: list[outbox.NewMessage],
        snapshot: orders.Snapshot | None = None,
    ) -> None:
        if snapshot is not None:
            self.new_snapshots[snapshot.key] = snapshot
        self.records.append(event)
        self.details.append(customer)
        self.queued += queued
        self.new_answers[event.id] = event.response
        for message in queued:
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
            outbox.add(session, sealer, self.queued)
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
    ``review_customers`` and ``review_orders`` (``reviews.ReviewPairs``); the
    orders' snapshots follow with ``PendingRows.look_up_orders``. A redone
    group starts a new transaction and so asks again: nothing of the
    attempt rolled back stays.
    """
    pairs = reviews.ReviewPairs()
    reviews.lock_review_customers(session, review_customers)
    pairs.look_up(session, review_customers, review_orders)
    session.info[_KEY] = PendingRows(events.answers(session, list(event_ids)), pairs)


def of(session: Session) -> PendingRows:
    """The rows ``begin`` started in this transaction."""
    rows: PendingRows = session.info[_KEY]
    return rows
