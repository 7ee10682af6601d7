"""Preferences per customer and category, their change log, and consent proofs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store.models import Consent, Preference, PreferenceChange


def choices(session: Session, customer_id: str) -> dict[str, bool]:
    """The categories the customer chose explicitly; absent ones keep their default."""
    rows = session.scalars(select(Preference).where(Preference.customer_id == customer_id))
    return {row.category: row.enabled for row in rows}


def choices_for(session: Session, customer_ids: Iterable[str]) -> dict[tuple[str, str], bool]:
    """Explicit choices of many customers at once, keyed by (customer, category)."""
    query = select(Preference.customer_id, Preference.category, Preference.enabled).where(
        Preference.customer_id.in_(set(customer_ids))
    )
    return {(row.customer_id, row.category): row.enabled for row in session.execute(query)}


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


@dataclass(frozen=True)
class Proof:
    """One consent as recorded: whose, for which category, how, from where, to which text, when."""

    customer_id: str
    category: str
    source: str
    ip: str | None
    text_version: str
    given_at: datetime


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
    """Record that the customer consented to ``category`` ``now`` (``record_consents`` for one)."""
    record_consents(session, sealer, [Proof(customer_id, category, source, ip, text_version, now)])


def record_consents(session: Session, sealer: Sealer, proofs: Sequence[Proof]) -> None:
    """Record consent proofs in one INSERT (an executemany for several), the IP sealed."""
    if not proofs:
        return
    session.connection().execute(
        insert(Consent),
        [
            {
                "customer_id": proof.customer_id,
                "category": proof.category,
                "source": proof.source,
                "ip": sealer.seal_text(proof.ip, proof.customer_id) if proof.ip else None,
                "text_version": proof.text_version,
                "given_at": proof.given_at,
            }
            for proof in proofs
        ],
    )


def known_consents(
    session: Session, customer_ids: Iterable[str], category: str
) -> set[tuple[str, datetime, str]]:
    """The (customer, time given, source) of the consents on record: a proof imported again
    is recognised by them and not recorded twice."""
    query = select(Consent.customer_id, Consent.given_at, Consent.source).where(
        Consent.customer_id.in_(set(customer_ids)), Consent.category == category
    )
    return {(row[0], row[1].astimezone(UTC), row[2]) for row in session.execute(query)}


def set_first_choices(
    session: Session,
    customer_ids: Sequence[str],
    category: str,
    enabled: bool,
    source: str,
    now: datetime,
) -> None:
    """``set_choice`` for customers who have made no choice in ``category`` yet, in bulk.

    One INSERT of the preferences and one of their change log (executemanys);
    a customer with a choice on record fails it as a duplicate key, so the
    caller passes only those ``choices_for`` found without one.
    """
    if not customer_ids:
        return
    connection = session.connection()
    connection.execute(
        insert(Preference),
        [
            {
                "customer_id": customer_id,
                "category": category,
                "enabled": enabled,
                "source": source,
                "updated_at": now,
            }
            for customer_id in customer_ids
        ],
    )
    connection.execute(
        insert(PreferenceChange),
        [
            {
                "customer_id": customer_id,
                "category": category,
                "enabled": enabled,
                "source": source,
                "at": now,
            }
            for customer_id in customer_ids
        ],
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
