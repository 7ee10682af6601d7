"""The customers table: the shop's id with sealed contact details."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store.models import Customer


@dataclass(frozen=True)
class Recipient:
    """A customer's contact details, opened for use."""

    id: str
    email: str
    name: str | None
    locale: str
    email_index: str = ""


def upsert(
    session: Session,
    sealer: Sealer,
    *,
    customer_id: str,
    email: str,
    name: str | None,
    locale: str,
    now: datetime,
) -> None:
    """Create the customer or bring their details up to date.

    Unsent mail picks up the change by itself: recipients are resolved when a
    message is sent, not when it is queued.
    """
    row = session.get(Customer, customer_id, with_for_update=True)
    sealed_name = sealer.seal_text(name) if name else None
    if row is None:
        session.add(
            Customer(
                id=customer_id,
                email=sealer.seal_text(email),
                email_index=sealer.blind_index(email),
                name=sealed_name,
                locale=locale,
                created_at=now,
                updated_at=now,
            )
        )
        return
    row.email = sealer.seal_text(email)
    row.email_index = sealer.blind_index(email)
    row.name = sealed_name
    row.locale = locale
    row.updated_at = now


def exists(session: Session, customer_id: str) -> bool:
    return session.get(Customer, customer_id) is not None


def get(session: Session, sealer: Sealer, customer_id: str) -> Recipient | None:
    row = session.get(Customer, customer_id)
    return _open(sealer, row) if row else None


def get_many(session: Session, sealer: Sealer, ids: Iterable[str]) -> dict[str, Recipient]:
    """The recipients for a batch of messages in one query."""
    rows = session.scalars(select(Customer).where(Customer.id.in_(set(ids))))
    return {row.id: _open(sealer, row) for row in rows}


def _open(sealer: Sealer, row: Customer) -> Recipient:
    return Recipient(
        id=row.id,
        email=sealer.open_text(row.email),
        name=sealer.open_text(row.name) if row.name else None,
        locale=row.locale,
        email_index=row.email_index,
    )


def forget(session: Session, customer_id: str) -> None:
    """Delete the customer's row and with it every contact detail (erasure)."""
    row = session.get(Customer, customer_id)
    if row is not None:
        session.delete(row)
