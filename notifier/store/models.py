"""The tables, as typed SQLAlchemy 2 models.

Personal data (addresses, names, order context) is stored sealed
(``LargeBinary``); see ``notifier.crypto``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from notifier.store.types import UTCDateTime
from notifier.vocabulary import FailureReason, MessageStatus

__all__ = ["FailureReason", "MessageStatus"]  # spoken here as everywhere: see notifier.vocabulary


PENDING = (MessageStatus.SCHEDULED, MessageStatus.RETRYING)
FINAL = (
    MessageStatus.SENT,
    MessageStatus.FAILED,
    MessageStatus.CANCELLED,
    MessageStatus.SUPPRESSED,
    MessageStatus.BOUNCED,
)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


def new_generation() -> str:
    """A customer's token generation: 128 random bits, hex."""
    return secrets.token_hex(16)


class Customer(Base):
    """A shop customer, keyed by the shop's own id; contact details sealed."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    email: Mapped[bytes] = mapped_column(LargeBinary)
    email_index: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_name: Mapped[bytes | None] = mapped_column(LargeBinary)
    locale: Mapped[str] = mapped_column(String(35))
    tags: Mapped[str | None] = mapped_column(String(1100))
    """The shop's tags as ``|vip|b2b|`` (see ``store.customers.tag_text``): in the clear, for the
    audience query, but in the customer's export, and gone with their row on erasure."""
    token_generation: Mapped[str | None] = mapped_column(String(32), default=new_generation)
    """Random, drawn when the row is inserted and never updated: every link token names it, so
    an id erased and used again does not revive the old links. None for customers from before
    migration 0012, whose links carry none."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Order(Base):
    """The latest known snapshot of one customer's order (sealed), merged from its events.

    Keyed by customer and order: an order id another customer sent is
    another order, so no event reads a stranger's order.
    """

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_order", "customer_id", "order_id", unique=True),
        Index("ix_orders_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(100))
    order_id: Mapped[str] = mapped_column(String(100))
    snapshot: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Event(Base):
    """One accepted request with its answer: the idempotency record."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str | None] = mapped_column(String(100), index=True)
    order_id: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    response: Mapped[dict[str, Any]]


REVIEW_PAIR_KIND = "review_products"
"""The kind that stands for a review pair: the cap on review requests counts these rows."""
_IS_REVIEW_PAIR = text(f"kind = '{REVIEW_PAIR_KIND}'")


class Message(Base):
    """The outbox: one row per mail to send, claimed by workers with a lease."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_due", "status", "priority", "send_after"),
        Index("ix_messages_customer", "customer_id", "created_at"),
        Index("ix_messages_order", "order_id"),
        Index("ix_messages_campaign", "campaign_id", "status"),
        Index("ix_messages_message_id", "message_id"),
        # The review cap's lookup, answered from the index alone: partial, so the
        # other kinds (a campaign's million rows) do not pay for it.
        Index(
            "ix_messages_review_pairs",
            "customer_id",
            "send_after",
            "status",
            "kind",
            sqlite_where=_IS_REVIEW_PAIR,
            postgresql_where=_IS_REVIEW_PAIR,
        ),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str | None] = mapped_column(String(200))
    order_id: Mapped[str | None] = mapped_column(String(100))
    campaign_id: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    context: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[MessageStatus] = mapped_column(
        Enum(
            MessageStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    send_after: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    """One try at delivering a message, whatever came of it."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int]
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    smtp_code: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(64))


class Preference(Base):
    """A customer's explicit choice for one category; no row means the category's default."""

    __tablename__ = "preferences"
    __table_args__ = (Index("ix_preferences_category", "category", "enabled", "customer_id"),)

    customer_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    category: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool]
    source: Mapped[str] = mapped_column(String(30))
    updated_at: Mapped[datetime]


class PreferenceChange(Base):
    """Every change of a preference, when and through what (the audit trail)."""

    __tablename__ = "preference_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(100), index=True)
    category: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool]
    source: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime]


class Consent(Base):
    """Proof of newsletter consent (GDPR Art. 7): when, how, from where, to which text."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(100), index=True)
    category: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(30))
    ip: Mapped[bytes | None] = mapped_column(LargeBinary)
    text_version: Mapped[str] = mapped_column(String(50))
    given_at: Mapped[datetime]


class Suppression(Base):
    """An address that must not receive (some) mail, keyed by its blind index."""

    __tablename__ = "suppressions"

    email_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    sealed_detail: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Why, sealed: a complaint's free text may hold a name and an address. Dropped when a
    customer with this address is erased; the suppression itself stays."""
    created_at: Mapped[datetime]


class Campaign(Base):
    """A newsletter: its content, per-locale subjects, and when it runs (once or by cron)."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    subjects: Mapped[dict[str, Any]]
    content: Mapped[dict[str, Any]]
    send_at: Mapped[datetime | None]
    cron: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    audience: Mapped[dict[str, Any] | None]
    fallback_locale: Mapped[str | None] = mapped_column(String(35))
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CampaignRun(Base):
    """One fan-out of a campaign; ``cursor`` makes it resumable after a crash."""

    __tablename__ = "campaign_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(100), index=True)
    scheduled_for: Mapped[datetime]
    send_after: Mapped[datetime]
    cursor: Mapped[str | None] = mapped_column(String(100))
    targeted: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None]


class Readiness(Base):
    """One row that ``/readyz`` rewrites: proof that the database takes a write right now."""

    __tablename__ = "readiness"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    checked_at: Mapped[datetime]


class SuppressionLift(Base):
    """A suppression taken away, by whom's say and why: the audit trail of ``DELETE``."""

    __tablename__ = "suppression_lifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email_index: Mapped[str] = mapped_column(String(64), index=True)
    previous_reason: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime]


class Bounce(Base):
    """A report that came back (DSN, ARF, provider event, auto-reply), as classified.

    ``raw`` and ``sealed_detail`` are sealed: a bounce quotes the original mail, its
    addresses and names. Rows of kind ``auto_reply`` or ``unparsed`` changed
    nothing; they are kept for ``notifier bounces list``.
    """

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    status_code: Mapped[str | None] = mapped_column(String(16))
    sealed_detail: Mapped[bytes | None] = mapped_column(LargeBinary)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)


class WebhookEvent(Base):
    """The outbox of webhooks to the shop: one row per event, retried with backoff.

    ``id`` is the Standard Webhooks ``webhook-id``, derived from what the
    event is about, so the same event is recorded once and a replay carries
    the id the shop has seen. ``data`` holds ids only, never personal data.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(index=True)
    next_attempt_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]


class Worker(Base):
    """A ``serve`` or ``worker`` process that sends mail, and when it last said it was alive.

    A worker whose ``beat_at`` is older than the heartbeat timeout is dead:
    the messages it leased are taken over at once rather than when their
    lease runs out (see ``store.outbox.lease_due``).
    """

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime] = mapped_column(index=True)
