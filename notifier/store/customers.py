"""The customers table: the shop's id with sealed contact details."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Insert, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notifier import errors
from notifier.crypto import PREFIX, Sealer
from notifier.recipient import Recipient
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
                "email": sealer.seal_text(customer.email, customer.id),
                "email_index": sealer.blind_index(customer.email),
                "name": sealer.seal_text(customer.name, customer.id) if customer.name else None,
                "first_name": sealer.seal_text(customer.first_name, customer.id)
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


def tags(session: Session, customer_id: str) -> list[str]:
    """The shop's tags of the customer (an export shows them: they describe a person)."""
    return tag_list(session.scalar(select(Customer.tags).where(Customer.id == customer_id)))


def email_index(session: Session, customer_id: str) -> str | None:
    """The blind index of the customer's address (a keyed hash, never sealed); None: no customer."""
    return session.scalar(select(Customer.email_index).where(Customer.id == customer_id))


def has_data_key_tokens(session: Session) -> bool:
    """Whether any customer's address is sealed with a data key (see ``crypto.PREFIX``)."""
    prefix = func.substr(Customer.email, 1, len(PREFIX)) == PREFIX
    return session.scalar(select(Customer.id).where(prefix).limit(1)) is not None


def exists(session: Session, customer_id: str) -> bool:
    return session.get(Customer, customer_id) is not None


def get(session: Session, sealer: Sealer, customer_id: str) -> Recipient | None:
    """The customer's details; None for no customer and for one whose data key is destroyed."""
    row = session.get(Customer, customer_id)
    if row is None:
        return None
    try:
        return _open(sealer, row)
    except errors.Shredded:
        return None


def get_many(
    session: Session, sealer: Sealer, ids: Iterable[str]
) -> tuple[dict[str, Recipient], set[str]]:
    """The recipients for a batch of messages in one query, and the ids of erased ones.

    Erased here means a row whose data key is gone (a database restored from
    a backup taken before an erasure): it reads as no one.
    """
    # Columns, not ORM objects: a batch reads hundreds, and loading entities costs more.
    rows = session.execute(select(*_SENDING).where(_customers.c.id.in_(set(ids)))).all()
    sealer.preload(row.email for row in rows)
    recipients: dict[str, Recipient] = {}
    shredded: set[str] = set()
    for row in rows:
        try:
            recipients[row.id] = _open(sealer, row)
        except errors.Shredded:
            shredded.add(row.id)
    return recipients, shredded


class _Sealed(Protocol):
    """A customer row as read for sending: an ORM object or a row of ``_SENDING``."""

    id: str
    email: bytes
    name: bytes | None
    locale: str
    email_index: str
    first_name: bytes | None
    token_generation: str | None


_SENDING = tuple(
    _customers.c[name]
    for name in ("id", "email", "name", "locale", "email_index", "first_name", "token_generation")
)
"""The columns ``_open`` reads."""


def _open(sealer: Sealer, row: _Sealed) -> Recipient:
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
