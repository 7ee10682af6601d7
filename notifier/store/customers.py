"""The customers table: the shop's id with sealed contact details."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store.models import Customer

_customers = cast(Table, Customer.__table__)


def _upsert(statement: sqlite.Insert | postgresql.Insert) -> Insert:
    """``statement`` (an INSERT of a whole row) updating the contact details if the id exists."""
    updated = ("email", "email_index", "name", "first_name", "locale", "updated_at")
    changes: dict[str, Any] = {column: statement.excluded[column] for column in updated}
    # Tags the shop did not send (None) stay as they were; an empty list clears them.
    changes["tags"] = func.coalesce(statement.excluded["tags"], _customers.c.tags)
    return statement.on_conflict_do_update(index_elements=[_customers.c.id], set_=changes)


# Built once, by dialect name, and executed on the session's connection: intake upserts for
# every event, and building a statement and going through ``Session.execute`` cost more than
# executing it.
_UPSERT: dict[str, Insert] = {
    "sqlite": _upsert(sqlite.insert(_customers)),
    "postgresql": _upsert(postgresql.insert(_customers)),
}


@dataclass(frozen=True)
class Details:
    """A customer's contact details as the shop sent them ``at`` that time."""

    id: str
    email: str
    name: str | None
    locale: str
    at: datetime
    first_name: str | None = None
    tags: list[str] | None = None
    """None keeps the stored tags; a list (even empty) replaces them."""


def tag_text(tags: Iterable[str] | None) -> str | None:
    """Tags as stored: ``|a|b|``, so "has tag a" is ``LIKE '%|a|%'``; None for None."""
    if tags is None:
        return None
    return "|" + "".join(f"{tag}|" for tag in sorted(set(tags)))


def tag_list(text: str | None) -> list[str]:
    return [tag for tag in (text or "").split("|") if tag]


@dataclass(frozen=True)
class Recipient:
    """A customer's contact details, opened for use."""

    id: str
    email: str
    name: str | None
    locale: str
    email_index: str = ""
    first_name: str | None = None
    token_generation: str = field(default="", compare=False)
    """What the customer's link tokens name (``mail.tokens.Claims.generation``)."""


def upsert(
    session: Session,
    sealer: Sealer,
    *,
    customer_id: str,
    email: str,
    name: str | None,
    locale: str,
    now: datetime,
    first_name: str | None = None,
) -> None:
    """Create the customer or bring their details up to date (``upsert_all`` for one)."""
    upsert_all(session, sealer, [Details(customer_id, email, name, locale, now, first_name)])


def upsert_all(session: Session, sealer: Sealer, details: Sequence[Details]) -> None:
    """Create the customers or bring their details up to date, in the order given.

    One ``INSERT … ON CONFLICT (id) DO UPDATE`` (an executemany for several;
    a customer given twice ends with the later details): an existing row
    gets the new sealed email, its blind index, name, first name and locale, and
    ``updated_at``; it keeps its ``created_at``. A single statement is both
    cheaper than reading the row first (intake runs this for every event)
    and free of the race in which two transactions both find no row and one
    insert fails. Unsent mail picks up the change by itself: recipients are
    resolved when a message is sent, not when it is queued.
    """
    if not details:
        return
    connection = session.connection()
    connection.execute(
        _UPSERT[connection.dialect.name],
        [
            {
                "id": customer.id,
                "email": sealer.seal_text(customer.email),
                "email_index": sealer.blind_index(customer.email),
                "name": sealer.seal_text(customer.name) if customer.name else None,
                "first_name": sealer.seal_text(customer.first_name)
                if customer.first_name
                else None,
                "locale": customer.locale,
                "tags": tag_text(customer.tags),
                "created_at": customer.at,
                "updated_at": customer.at,
            }
            for customer in details
        ],
    )


def token_generation(session: Session, customer_id: str) -> tuple[bool, str]:
    """Whether the customer exists, and the generation their link tokens must name."""
    found = session.execute(
        select(Customer.token_generation).where(Customer.id == customer_id)
    ).first()
    return (found is not None, (found[0] or "") if found is not None else "")


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
        first_name=sealer.open_text(row.first_name) if row.first_name else None,
        token_generation=row.token_generation or "",
    )


def forget(session: Session, customer_id: str) -> None:
    """Delete the customer's row and with it every contact detail (erasure)."""
    row = session.get(Customer, customer_id)
    if row is not None:
        session.delete(row)
