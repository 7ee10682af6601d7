"""Reports that came back, as classified; their detail and raw report sealed (they quote
personal data: a diagnostic may name the recipient)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store.models import Bounce, Message

_bounces = cast(Table, Bounce.__table__)


def add(
    session: Session,
    sealer: Sealer,
    *,
    source: str,
    kind: str,
    message_id: str | None,
    status_code: str | None,
    detail: str | None,
    raw: bytes | None,
    now: datetime,
) -> None:
    session.add(
        Bounce(
            received_at=now,
            source=source,
            kind=kind,
            message_id=message_id,
            status_code=status_code,
            sealed_detail=sealer.seal_text(detail) if detail is not None else None,
            raw=sealer.seal(raw) if raw is not None else None,
        )
    )


def recent(session: Session, limit: int, kinds: list[str] | None = None) -> list[Bounce]:
    """The newest reports first, of ``kinds`` if given."""
    query = select(Bounce).order_by(Bounce.received_at.desc(), Bounce.id.desc()).limit(limit)
    if kinds:
        query = query.where(Bounce.kind.in_(kinds))
    return list(session.scalars(query))


def detail(sealer: Sealer, row: Bounce) -> str | None:
    """The report's detail (its status and diagnostic), opened."""
    return sealer.open_text(row.sealed_detail) if row.sealed_detail is not None else None


def of_customer(session: Session, sealer: Sealer, customer_id: str) -> list[dict[str, object]]:
    """The reports about the customer's messages, as classified, for a data export."""
    mine = select(Message.id).where(Message.customer_id == customer_id).scalar_subquery()
    query = (
        select(Bounce).where(Bounce.message_id.in_(mine)).order_by(Bounce.received_at, Bounce.id)
    )
    return [
        {
            "received_at": row.received_at.isoformat(),
            "source": row.source,
            "kind": row.kind,
            "message_id": row.message_id,
            "status_code": row.status_code,
            "detail": detail(sealer, row),
        }
        for row in session.scalars(query)
    ]


def forget_customer(session: Session, customer_id: str) -> None:
    """Erasure: drop the reports about the customer's messages (they quote the address)."""
    mine = select(Message.id).where(Message.customer_id == customer_id).scalar_subquery()
    session.execute(delete(_bounces).where(_bounces.c.message_id.in_(mine)))


def purge(session: Session, older_than: datetime) -> int:
    """Retention: drop reports received before ``older_than``; returns how many."""
    gone = session.execute(
        delete(_bounces).where(_bounces.c.received_at < older_than).returning(_bounces.c.id)
    )
    return len(gone.all())
