"""The events table: each accepted request once, with the answer it got."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from notifier.store.models import Event

_EVENTS: Table = Event.__table__  # type: ignore[assignment]
# Built once (Core, not the ORM): intake runs these two for every event, and building and
# compiling a statement per call costs more than executing it.
_ANSWER = select(_EVENTS.c.response).where(_EVENTS.c.id == bindparam("event_id"))
_RECORD = insert(_EVENTS)


def answer(session: Session, event_id: str) -> dict[str, Any] | None:
    """The stored answer to an event seen before, or None for a new one."""
    response: dict[str, Any] | None = session.execute(
        _ANSWER, {"event_id": event_id}
    ).scalar_one_or_none()
    return response


def record(
    session: Session,
    *,
    event_id: str,
    type: str,
    customer_id: str | None,
    order_id: str | None,
    occurred_at: datetime,
    received_at: datetime,
    response: dict[str, Any],
) -> None:
    """Store the event with the answer it gets, before anything else it writes.

    A plain INSERT, executed at once: a concurrent duplicate blocks or fails
    here (a ``Duplicate`` from the transaction or savepoint) before any mail
    is queued twice.
    """
    session.execute(
        _RECORD,
        {
            "id": event_id,
            "type": type,
            "customer_id": customer_id,
            "order_id": order_id,
            "occurred_at": occurred_at,
            "received_at": received_at,
            "response": response,
        },
    )


def forget_customer(session: Session, customer_id: str) -> None:
    """Drop the customer's event records; a later event with an old id is simply new."""
    session.execute(delete(Event).where(Event.customer_id == customer_id))
