"""The events table: each accepted request once, with the answer it got."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from notifier.store.models import Event

_EVENTS: Table = Event.__table__  # type: ignore[assignment]
# Built once and executed on the session's connection (Core, not the ORM): intake runs
# these for every event or group of events, and building a statement and going through
# ``Session.execute`` cost more than executing it.
_ANSWER = select(_EVENTS.c.response).where(_EVENTS.c.id == bindparam("event_id"))
_ANSWERS = select(_EVENTS.c.id, _EVENTS.c.response).where(
    _EVENTS.c.id.in_(bindparam("event_ids", expanding=True))
)
_RECORD = insert(_EVENTS)


@dataclass(frozen=True)
class Record:
    """An accepted event with the answer it got, as stored."""

    id: str
    type: str
    customer_id: str | None
    order_id: str | None
    occurred_at: datetime
    received_at: datetime
    response: dict[str, Any]


def answer(session: Session, event_id: str) -> dict[str, Any] | None:
    """The stored answer to an event seen before, or None for a new one."""
    response: dict[str, Any] | None = (
        session.connection().execute(_ANSWER, {"event_id": event_id}).scalar_one_or_none()
    )
    return response


def answers(session: Session, event_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The stored answers of those of ``event_ids`` seen before, by id, in one query."""
    if not event_ids:
        return {}
    rows = session.connection().execute(_ANSWERS, {"event_ids": list(set(event_ids))})
    return {event_id: response for event_id, response in rows}


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
    """Store the event with the answer it gets (``record_all`` for one)."""
    record_all(
        session,
        [Record(event_id, type, customer_id, order_id, occurred_at, received_at, response)],
    )


def record_all(session: Session, records: Sequence[Record]) -> None:
    """Store events with their answers: one plain INSERT (an executemany for several).

    An id stored already, or being stored by a concurrent transaction, blocks
    or fails here: a ``Duplicate`` from the transaction or savepoint, which
    undoes what the event queued with it.
    """
    if not records:
        return
    session.connection().execute(
        _RECORD,
        [
            {
                "id": record.id,
                "type": record.type,
                "customer_id": record.customer_id,
                "order_id": record.order_id,
                "occurred_at": record.occurred_at,
                "received_at": record.received_at,
                "response": record.response,
            }
            for record in records
        ],
    )


def of_customer(session: Session, customer_id: str) -> list[dict[str, Any]]:
    """The customer's event records, oldest first, for a data export (the answers aside)."""
    query = (
        select(Event.id, Event.type, Event.order_id, Event.occurred_at, Event.received_at)
        .where(Event.customer_id == customer_id)
        .order_by(Event.received_at, Event.id)
    )
    return [
        {
            "id": event_id,
            "type": type_,
            "order_id": order_id,
            "occurred_at": occurred_at.isoformat(),
            "received_at": received_at.isoformat(),
        }
        for event_id, type_, order_id, occurred_at, received_at in session.execute(query)
    ]


def forget_customer(session: Session, customer_id: str) -> None:
    """Drop the customer's event records; a later event with an old id is simply new."""
    session.execute(delete(Event).where(Event.customer_id == customer_id))
