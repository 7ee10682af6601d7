"""The events table: each accepted request once, with the answer it got."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from notifier.store.models import Event


def answer(session: Session, event_id: str) -> dict[str, Any] | None:
    """The stored answer to an event seen before, or None for a new one."""
    row = session.get(Event, event_id)
    return row.response if row else None


def record(
    session: Session,
    *,
    event_id: str,
    type: str,
    customer_id: str | None,
    order_id: str | None,
    occurred_at: datetime,
    received_at: datetime,
) -> None:
    """Store the event before acting on it.

    Flushing at once makes a concurrent duplicate block or fail here (a
    ``Duplicate`` from the transaction) before any mail is queued twice.
    """
    session.add(
        Event(
            id=event_id,
            type=type,
            customer_id=customer_id,
            order_id=order_id,
            occurred_at=occurred_at,
            received_at=received_at,
            response={},
        )
    )
    session.flush()


def set_answer(session: Session, event_id: str, response: dict[str, Any]) -> None:
    row = session.get(Event, event_id)
    assert row is not None, "set_answer follows record in the same transaction"
    row.response = response


def forget_customer(session: Session, customer_id: str) -> None:
    """Drop the customer's event records; a later event with an old id is simply new."""
    session.execute(delete(Event).where(Event.customer_id == customer_id))
