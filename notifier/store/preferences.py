"""Preferences per customer and category, their change log, and consent proofs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store.models import Consent, Preference, PreferenceChange


def choices(session: Session, customer_id: str) -> dict[str, bool]:
    """The categories the customer chose explicitly; absent ones keep their default."""
    rows = session.scalars(select(Preference).where(Preference.customer_id == customer_id))
    return {row.category: row.enabled for row in rows}


def choices_for(session: Session, customer_ids: Iterable[str]) -> dict[tuple[str, str], bool]:
    """Explicit choices of many customers at once, keyed by (customer, category)."""
    query = select(Preference).where(Preference.customer_id.in_(set(customer_ids)))
    return {(row.customer_id, row.category): row.enabled for row in session.scalars(query)}


def set_choice(
    session: Session, customer_id: str, category: str, enabled: bool, source: str, now: datetime
) -> bool:
    """Record a choice; returns True when it changed anything. Every change is logged."""
    row = session.get(Preference, (customer_id, category), with_for_update=True)
    if row is not None and row.enabled == enabled:
        return False
    if row is None:
        session.add(
            Preference(
                customer_id=customer_id,
                category=category,
                enabled=enabled,
                source=source,
                updated_at=now,
            )
        )
    else:
        row.enabled, row.source, row.updated_at = enabled, source, now
    session.add(
        PreferenceChange(
            customer_id=customer_id, category=category, enabled=enabled, source=source, at=now
        )
    )
    return True


def record_consent(
    session: Session,
    sealer: Sealer,
    *,
    customer_id: str,
    category: str,
    source: str,
    ip: str | None,
    text_version: str,
    now: datetime,
) -> None:
    session.add(
        Consent(
            customer_id=customer_id,
            category=category,
            source=source,
            ip=sealer.seal_text(ip) if ip else None,
            text_version=text_version,
            given_at=now,
        )
    )


def changes(session: Session, customer_id: str) -> list[PreferenceChange]:
    query = select(PreferenceChange).where(PreferenceChange.customer_id == customer_id)
    return list(session.scalars(query.order_by(PreferenceChange.at, PreferenceChange.id)))


def consents(session: Session, customer_id: str) -> list[Consent]:
    query = select(Consent).where(Consent.customer_id == customer_id)
    return list(session.scalars(query.order_by(Consent.given_at, Consent.id)))


def forget(session: Session, customer_id: str) -> None:
    """Remove every preference, change and consent row of a customer (erasure)."""
    for model in (Preference, PreferenceChange, Consent):
        session.execute(delete(model).where(model.customer_id == customer_id))
