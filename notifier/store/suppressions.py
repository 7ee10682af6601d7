"""Suppressed addresses, looked up by blind index only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.store.models import Customer, Suppression, SuppressionLift
from notifier.vocabulary import SuppressionReason


def add(session: Session, email_index: str, reason: str, detail: str | None, now: datetime) -> bool:
    """Suppress an address; a stronger reason replaces a weaker one. True if anything changed."""
    row = session.get(Suppression, email_index, with_for_update=True)
    if row is None:
        session.add(
            Suppression(email_index=email_index, reason=reason, detail=detail, created_at=now)
        )
        return True
    if SuppressionReason(reason).severity > SuppressionReason(row.reason).severity:
        row.reason, row.detail, row.created_at = reason, detail, now
        return True
    return False


def reasons_for(session: Session, email_indexes: Iterable[str]) -> dict[str, str]:
    query = select(Suppression.email_index, Suppression.reason).where(
        Suppression.email_index.in_(set(email_indexes))
    )
    return {index: reason for index, reason in session.execute(query)}


def customers_with(session: Session, email_index: str) -> list[str]:
    """Ids of the customers whose address has this blind index."""
    return list(session.scalars(select(Customer.id).where(Customer.email_index == email_index)))


def get(session: Session, email_index: str) -> Suppression | None:
    return session.get(Suppression, email_index)


def lift(session: Session, email_index: str, reason: str, now: datetime) -> str | None:
    """Take a suppression away, on record with ``reason``; the reason it had, None if none."""
    row = session.get(Suppression, email_index, with_for_update=True)
    if row is None:
        return None
    previous = row.reason
    session.delete(row)
    session.add(
        SuppressionLift(email_index=email_index, previous_reason=previous, reason=reason, at=now)
    )
    return previous
