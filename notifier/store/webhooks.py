"""The webhook outbox: events for the shop, claimed with a lease and retried with backoff.

Events are written in the transaction that changes what they report, so an
event is never lost nor told of a change that was rolled back. The id is a
hash of what the event is about: recording the same event twice keeps one
row (``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notifier.store.models import Message, WebhookEvent

_events = cast(Table, WebhookEvent.__table__)
_messages = cast(Table, Message.__table__)
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True)
class Due:
    id: str
    type: str
    data: dict[str, Any]
    created_at: datetime
    attempts: int


def event_id(type: str, key: str) -> str:
    """The ``webhook-id``: the same event (type and what it is about) always has the same id."""
    return "msg_" + hashlib.blake2b(f"{type}\0{key}".encode(), digest_size=16).hexdigest()


def _insert(session: Session) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(_events)


def add(session: Session, type: str, key: str, data: dict[str, Any], now: datetime) -> None:
    """Record one event; the same ``type`` and ``key`` again records nothing."""
    session.execute(_insert(session).values(_row(type, key, data, now)).on_conflict_do_nothing())


def add_for_messages(
    session: Session, type: str, message_ids: Sequence[str], now: datetime
) -> None:
    """Record ``type`` for each message, with its id, customer and kind.

    Keyed by message and attempt, so each attempt's outcome is told once.
    """
    if not message_ids:
        return
    m = _messages.c
    query = select(m.id, m.customer_id, m.kind, m.attempts).where(m.id.in_(list(message_ids)))
    rows = [
        _row(
            type,
            f"{row.id}\0{row.attempts}",
            {"message_id": row.id, "customer_id": row.customer_id, "kind": row.kind},
            now,
        )
        for row in session.execute(query)
    ]
    if rows:
        session.execute(_insert(session).values(rows).on_conflict_do_nothing())


def _row(type: str, key: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "id": event_id(type, key),
        "type": type,
        "data": data,
        "status": PENDING,
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }


def claim_due(session: Session, now: datetime, limit: int, lease: timedelta) -> list[Due]:
    """Lease up to ``limit`` pending events due at ``now``, oldest first.

    The lease is a ``next_attempt_at`` pushed ``lease`` ahead: a sender that
    dies mid-delivery leaves the event due again when it passes, so another
    process sends it (at least once; the shop deduplicates by ``webhook-id``).
    """
    query = (
        select(
            _events.c.id, _events.c.type, _events.c.data, _events.c.created_at, _events.c.attempts
        )
        .where(_events.c.status == PENDING, _events.c.next_attempt_at <= now)
        .order_by(_events.c.next_attempt_at, _events.c.created_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    if rows:
        session.execute(
            update(_events)
            .where(_events.c.id.in_([row.id for row in rows]))
            .values(next_attempt_at=now + lease)
        )
    return [Due(row.id, row.type, row.data, row.created_at, row.attempts) for row in rows]


def mark_delivered(session: Session, id: str, now: datetime) -> None:
    session.execute(
        update(_events)
        .where(_events.c.id == id)
        .values(
            status=DELIVERED,
            attempts=_events.c.attempts + 1,
            delivered_at=now,
            last_error=None,
        )
    )


def mark_retry(session: Session, id: str, error: str, retry_at: datetime | None) -> None:
    """A failed try: due again at ``retry_at``, or ``failed`` for good when it is None."""
    values: dict[str, Any] = {"attempts": _events.c.attempts + 1, "last_error": error[:500]}
    if retry_at is None:
        values["status"] = FAILED
    else:
        values["next_attempt_at"] = retry_at
    session.execute(update(_events).where(_events.c.id == id).values(values))


def replay(session: Session, since: datetime, now: datetime) -> int:
    """Send again every event recorded since ``since``, whatever became of it; returns how many."""
    result = session.execute(
        update(_events)
        .where(_events.c.created_at >= since)
        .values(status=PENDING, next_attempt_at=now, attempts=0, last_error=None)
        .returning(_events.c.id)
    )
    return len(result.all())


def depth(session: Session) -> list[tuple[str, int]]:
    """Event counts by status, for metrics."""
    query = select(_events.c.status, func.count()).group_by(_events.c.status)
    return [(status, count) for status, count in session.execute(query)]


def purge(session: Session, older_than: datetime) -> int:
    """Retention: drop delivered and failed events recorded before ``older_than``."""
    gone = session.execute(
        delete(_events)
        .where(_events.c.status != PENDING, _events.c.created_at < older_than)
        .returning(_events.c.id)
    )
    return len(gone.all())


def forget_customer(session: Session, customer_id: str) -> int:
    """Erasure: drop every event about the customer, told or not; returns how many.

    The shop asked for the erasure, so an event still to tell it of the
    customer has nobody left to be about; each one names the customer id
    (and a campaign message's id held it too).
    """
    gone = session.execute(
        delete(_events)
        .where(_events.c.data["customer_id"].as_string() == customer_id)
        .returning(_events.c.id)
    )
    return len(gone.all())
