"""The orders table: each customer's orders as last known, sealed like all personal data.

An order's snapshot holds names, addresses and what was bought, so it is
sealed (``Sealer.seal_json``), erased with its customer, exported with
them, and dropped by retention when no event touched it for that long.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store.models import Order

_orders = cast(Table, Order.__table__)

Key = tuple[str, str]
"""(customer id, order id): an order is known only under the customer who sent it."""


def _upsert(statement: sqlite.Insert | postgresql.Insert) -> Insert:
    """``statement`` (an INSERT of a whole row) replacing the snapshot if the order exists."""
    return statement.on_conflict_do_update(
        index_elements=[_orders.c.customer_id, _orders.c.order_id],
        set_={column: statement.excluded[column] for column in ("snapshot", "updated_at")},
    )


_UPSERT: dict[str, Insert] = {
    "sqlite": _upsert(sqlite.insert(_orders)),
    "postgresql": _upsert(postgresql.insert(_orders)),
}


@dataclass(frozen=True)
class Snapshot:
    """An order as known ``at`` that time (the merged fields, ``flows.orders.merge``)."""

    customer_id: str
    order_id: str
    order: dict[str, Any]
    at: datetime

    @property
    def key(self) -> Key:
        return (self.customer_id, self.order_id)


def snapshots(session: Session, sealer: Sealer, keys: Collection[Key]) -> dict[Key, dict[str, Any]]:
    """The stored snapshots of those of ``keys`` known, opened, in one query.

    On PostgreSQL the rows stay locked to the end of the transaction
    (in key order, as every writer takes them), so two processes merging
    news into one order take turns instead of one losing the other's.
    """
    if not keys:
        return {}
    query = (
        select(_orders.c.customer_id, _orders.c.order_id, _orders.c.snapshot)
        .where(tuple_(_orders.c.customer_id, _orders.c.order_id).in_(sorted(set(keys))))
        .order_by(_orders.c.customer_id, _orders.c.order_id)
        .with_for_update()
    )
    rows = session.execute(query).all()
    sealer.preload(sealed for _, _, sealed in rows)
    # An order sealed with a destroyed key (a restored backup of an erased customer) is
    # unknown: the event starts it afresh.
    opened = {(c, o): sealer.open_remaining_json(sealed) for c, o, sealed in rows}
    return {key: order for key, order in opened.items() if order is not None}


def upsert_all(session: Session, sealer: Sealer, known: Sequence[Snapshot]) -> None:
    """Store the snapshots, replacing those of orders known already: one executemany."""
    if not known:
        return
    connection = session.connection()
    connection.execute(
        _UPSERT[connection.dialect.name],
        [
            {
                "customer_id": snapshot.customer_id,
                "order_id": snapshot.order_id,
                "snapshot": sealer.seal_json(snapshot.order, snapshot.customer_id),
                "created_at": snapshot.at,
                "updated_at": snapshot.at,
            }
            for snapshot in known
        ],
    )


def of_customer(session: Session, sealer: Sealer, customer_id: str) -> list[dict[str, Any]]:
    """The customer's orders as known, oldest first, for a data export."""
    query = (
        select(Order).where(Order.customer_id == customer_id).order_by(Order.created_at, Order.id)
    )
    opened = ((sealer.open_remaining_json(row.snapshot), row) for row in session.scalars(query))
    return [
        {
            "order": order,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }
        for order, row in opened
        if order is not None
    ]


def forget_customer(session: Session, customer_id: str) -> None:
    """Delete every order of the customer (erasure)."""
    session.execute(delete(_orders).where(_orders.c.customer_id == customer_id))


def purge(session: Session, older_than: datetime, limit: int = 5000) -> int:
    """Delete up to ``limit`` orders no event touched since ``older_than``; returns how many."""
    page = (
        select(_orders.c.id).where(_orders.c.updated_at < older_than).limit(limit).scalar_subquery()
    )
    purged = session.execute(
        delete(_orders).where(_orders.c.id.in_(page)).returning(_orders.c.id)
    ).all()
    return len(purged)
