"""The review cap's reads and locks: one review pair per customer per 90 days, one per order.

A review pair is the two review requests after an order; its
``review_products`` row (``models.REVIEW_PAIR_KIND``) stands for it, and a
partial index holds just those rows. ``pending_rows`` asks these questions
for a whole batch of events at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, func, literal, select, text
from sqlalchemy.orm import Session

from notifier.store.models import REVIEW_PAIR_KIND, Message
from notifier.vocabulary import MessageStatus

if TYPE_CHECKING:
    from notifier.store.outbox import NewMessage

_messages = cast(Table, Message.__table__)

# Built once and executed on the session's connection: intake asks these for every batch.
_LAST_REVIEW_PAIRS_AT = (
    select(_messages.c.customer_id, func.max(_messages.c.send_after))
    .where(
        _messages.c.customer_id.in_(bindparam("customer_ids", expanding=True)),
        # Written into the SQL, not bound: a planner matches it to the partial index's WHERE.
        _messages.c.kind == literal(REVIEW_PAIR_KIND, literal_execute=True),
        _messages.c.status != MessageStatus.CANCELLED,
    )
    .group_by(_messages.c.customer_id)
)
_ORDERS_WITH_REVIEW_PAIR = (
    select(_messages.c.order_id)
    .where(
        _messages.c.order_id.in_(bindparam("order_ids", expanding=True)),
        _messages.c.kind == REVIEW_PAIR_KIND,
    )
    .distinct()
)


def last_review_pairs_at(
    session: Session, customer_ids: Collection[str]
) -> dict[str, datetime | None]:
    """When each customer's latest review pair was (or is) due, ignoring cancelled pairs.

    One query for them all; every id given is a key, None for a customer
    without such a pair.
    """
    if not customer_ids:
        return {}
    unique = list(set(customer_ids))
    last: dict[str, datetime | None] = dict.fromkeys(unique)
    rows = session.connection().execute(_LAST_REVIEW_PAIRS_AT, {"customer_ids": unique})
    last.update((customer_id, at) for customer_id, at in rows)
    return last


_REVIEW_LOCK_SPACE = 0x6E746672
"""The first key of the review cap's advisory locks, so they keep clear of other users' locks."""
_LOCK_REVIEW_CUSTOMERS = text(
    "SELECT count(pg_advisory_xact_lock(:space, key)) FROM unnest(CAST(:keys AS integer[])) AS key"
)


def lock_review_customers(session: Session, customer_ids: Collection[str]) -> None:
    """On PostgreSQL, hold each customer's review-cap lock until the transaction ends.

    Two processes deciding a review pair for one customer then take turns,
    and the second reads the pairs after the first committed: at most one
    pair per customer per 90 days and per order holds across processes. The
    locks are taken in one order (sorted keys; ``unnest`` reads an array in
    order) and before any row lock of the transaction, so writers cannot
    deadlock over them. SQLite needs none: a writer there holds the
    database's one write lock from its first read to its commit.
    """
    if not customer_ids or session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(customer_id) for customer_id in customer_ids})
    session.connection().execute(
        _LOCK_REVIEW_CUSTOMERS, {"space": _REVIEW_LOCK_SPACE, "keys": keys}
    )


def _lock_key(customer_id: str) -> int:
    """A signed 32-bit key for the customer; two customers sharing one only wait for each other."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def orders_with_review_pair(session: Session, order_ids: Collection[str]) -> set[str]:
    """Those of ``order_ids`` whose review pair was queued already, whatever became of it.

    One query for them all.
    """
    if not order_ids:
        return set()
    unique = list(set(order_ids))
    rows = session.connection().execute(_ORDERS_WITH_REVIEW_PAIR, {"order_ids": unique})
    return {order_id for (order_id,) in rows}


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
    (``lock_review_customers``), held to the commit: a process
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
        self.last_at.update(last_review_pairs_at(session, customer_ids))
        self.orders |= orders_with_review_pair(session, order_ids)

    def order_has_pair(self, order_id: str) -> bool:
        return order_id in self.orders or order_id in self.new_orders

    def knows(self, customer_id: str) -> bool:
        return customer_id in self.new_last_at or customer_id in self.last_at

    def last_pair_at(self, customer_id: str) -> datetime | None:
        """The customer's latest pair not cancelled; None for none (``knows`` must hold)."""
        queued = self.new_last_at.get(customer_id)
        return queued if queued is not None else self.last_at[customer_id]

    def queue(self, message: NewMessage) -> None:
        """Count ``message`` if it is a review pair's first mail: its rows wait to be written.

        An unknown customer stays unknown: the lookup that follows sees the
        pair, since the customer's pending rows are written before it.
        """
        if message.kind != REVIEW_PAIR_KIND:
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
