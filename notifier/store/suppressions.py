"""Suppressed addresses, looked up by blind index only; their details sealed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store.models import Customer, Suppression, SuppressionLift
from notifier.vocabulary import SuppressionReason


def add(
    session: Session,
    sealer: Sealer,
    email_index: str,
    reason: str,
    detail: str | None,
    now: datetime,
) -> bool:
    """Suppress an address; a stronger reason replaces a weaker one. True if anything changed.

    ``detail`` is sealed: a complaint's text may name the person.
    """
    sealed = sealer.seal_text(detail) if detail else None
    row = session.get(Suppression, email_index, with_for_update=True)
    if row is None:
        session.add(
            Suppression(
                email_index=email_index, reason=reason, sealed_detail=sealed, created_at=now
            )
        )
        return True
    if SuppressionReason(reason).severity > SuppressionReason(row.reason).severity:
        row.reason, row.sealed_detail, row.created_at = reason, sealed, now
        return True
    return False


def detail(sealer: Sealer, row: Suppression) -> str | None:
    """The suppression's detail, opened."""
    return sealer.open_text(row.sealed_detail) if row.sealed_detail else None


def forget_detail(session: Session, email_index: str) -> None:
    """Erasure: drop the detail of the address's suppression, keep the suppression."""
    session.execute(
        update(Suppression).where(Suppression.email_index == email_index).values(sealed_detail=None)
    )


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
