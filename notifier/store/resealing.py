"""Re-encrypting stored personal data with the current key, page by page, while the engine runs.

Data sealed with a customer's data key is left as it is (rotation re-wraps
the data keys instead, ``DataKeys.rewrap``); data sealed with the master
key moves under its customer's data key, or the first master key if it
belongs to no customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from notifier.crypto import Sealer
from notifier.store.models import Bounce, Consent, Customer, Message, Order, Suppression


@dataclass(frozen=True)
class SealedColumn:
    """A column holding sealed data, and the primary key to page through it by."""

    name: str
    key: InstrumentedAttribute[Any]
    column: InstrumentedAttribute[Any]
    owner: InstrumentedAttribute[Any] | None = None
    """The customer whose data key seals the column; None: the master key does."""


SEALED_COLUMNS = (
    SealedColumn("customers.email", Customer.id, Customer.email, Customer.id),
    SealedColumn("customers.name", Customer.id, Customer.name, Customer.id),
    SealedColumn("customers.first_name", Customer.id, Customer.first_name, Customer.id),
    SealedColumn("messages.context", Message.id, Message.context, Message.customer_id),
    SealedColumn("consents.ip", Consent.id, Consent.ip, Consent.customer_id),
    SealedColumn("orders.snapshot", Order.id, Order.snapshot, Order.customer_id),
    SealedColumn("suppressions.detail", Suppression.email_index, Suppression.sealed_detail),
    SealedColumn("bounces.detail", Bounce.id, Bounce.sealed_detail),
    SealedColumn("bounces.raw", Bounce.id, Bounce.raw),
)


def reseal_page(
    session: Session, sealer: Sealer, sealed: SealedColumn, after: Any, limit: int
) -> tuple[Any, int]:
    """Re-encrypt one page of ``sealed`` after key ``after``; returns (last key, rows changed).

    The last key is None when the column has been read to its end. Each row is
    written only if its value did not change meanwhile, so a concurrent
    writer's newer value is never overwritten.
    """
    owner = sealed.owner if sealed.owner is not None else null()
    query = select(sealed.key, sealed.column, owner).where(sealed.column.is_not(None))
    if after is not None:
        query = query.where(sealed.key > after)
    rows = session.execute(query.order_by(sealed.key).limit(limit)).all()
    if not rows:
        return None, 0
    changed = 0
    table = sealed.key.class_
    for key, value, customer_id in rows:
        resealed = sealer.reseal(value, customer_id)
        if resealed is not None:
            result: Any = session.execute(
                update(table)
                .where(sealed.key == key, sealed.column == value)
                .values({sealed.column.key: resealed})
            )
            changed += result.rowcount
    return rows[-1][0], changed
