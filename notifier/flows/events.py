"""From a shop event to outbox operations: which mails, due when, what to cancel.

``plan`` is pure: the service looks up the little history it needs (the
customer's last review pair, whether the order already has one) and passes
it in, then carries the plan out in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from notifier import errors, schemas
from notifier.flows import kinds, timing
from notifier.schemas import EVENT_DATA, EventIn, EventType
from notifier.settings import Settings

ORDER_EVENTS = frozenset(
    {
        EventType.ORDER_PLACED,
        EventType.ORDER_SHIPPED,
        EventType.ORDER_VERIFICATION_REQUESTED,
        EventType.ORDER_DELIVERED,
        EventType.ORDER_CANCELLED,
        EventType.ORDER_RETURNED,
    }
)
IMMEDIATE = {
    EventType.ORDER_PLACED: "order_confirmation",
    EventType.ORDER_SHIPPED: "shipping_notice",
    EventType.ORDER_VERIFICATION_REQUESTED: "verification_question",
    EventType.NEWSLETTER_SUBSCRIBED: "newsletter_confirm",
}
REVIEW_KINDS = ("review_products", "review_service")
CANCELLING = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_RETURNED})


@dataclass(frozen=True)
class PlannedMessage:
    kind: str
    send_after: datetime
    context: dict[str, Any]


@dataclass
class Plan:
    messages: list[PlannedMessage] = field(default_factory=list)
    cancel_order: str | None = None


@dataclass(frozen=True)
class ReviewHistory:
    """What the review cap needs to know about the past."""

    last_pair_at: datetime | None = None
    order_has_pair: bool = False


def validate(event: EventIn) -> None:
    """Checks that depend on the event type, beyond what the schema can say.

    ``data`` is checked against its type's shape (``schemas.EVENT_DATA``):
    what it holds must be right; which fields must be there is the kinds
    table's say, checked by ``plan`` against the order as remembered.
    """
    if event.type in ORDER_EVENTS and event.order is None:
        raise errors.InvalidInput(f"{event.type} needs an order", "order")
    shape = EVENT_DATA.get(event.type)
    if shape is not None:
        try:
            shape.model_validate(event.data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(step) for step in ("data", *problem["loc"]))
            raise errors.InvalidInput(_reason(problem), where) from None
    extras = event.order.model_extra if event.order is not None else None
    for where, value in (("data", event.data), ("order", extras or {})):
        unsafe = schemas.unsafe_links(value, where)
        if unsafe:
            raise errors.InvalidInput(
                f"a link must be an {'/'.join(schemas.LINK_SCHEMES)} URL", unsafe[0]
            )


def _reason(problem: ErrorDetails) -> str:
    """pydantic's message without its "Value error, " prefix for our own validators' words."""
    cause = problem.get("ctx", {}).get("error")
    return str(cause) if isinstance(cause, ValueError) else problem["msg"]


def kinds_for(event_type: EventType, settings: Settings) -> tuple[str, ...]:
    """Every kind an event of this type may queue: what it is checked against.

    The review pair counts even when the cap will skip it, so whether an
    event is accepted does not depend on the customer's history.
    """
    produced: tuple[str, ...] = (IMMEDIATE[event_type],) if event_type in IMMEDIATE else ()
    if reviews_triggered_by(event_type, settings):
        produced += REVIEW_KINDS
    return produced


def reviews_triggered_by(event_type: EventType, settings: Settings) -> bool:
    trigger = (
        EventType.ORDER_SHIPPED if settings.review_from == "shipped" else EventType.ORDER_DELIVERED
    )
    return event_type is trigger


@dataclass(frozen=True)
class Moment:
    """When an event arrived (``now``) and the time it says it happened (``occurred_at``).

    Immediate mail is due at ``now``: a shop clock ahead of ours, or local
    time labelled UTC, must not hold a confirmation back. The review delays
    count from ``occurred_at`` (``now`` if the event gives none), which the
    schema keeps between 2000 and 2100 so no delay overflows.
    """

    now: datetime
    occurred_at: datetime


def plan(
    event: EventIn,
    at: Moment,
    settings: Settings,
    history: ReviewHistory,
    order: dict[str, Any] | None = None,
) -> Plan:
    """The outbox operations ``event`` calls for, or InvalidInput naming what it lacks.

    ``order`` is the order as remembered with this event's news merged in
    (``flows.orders.merge``); the mail is written from it, and it must hold
    what every kind the event may queue requires. Immediate mail is due when
    the event arrived; only the review delays count from ``occurred_at``.
    """
    validate(event)
    context: dict[str, Any] = {"data": event.data}
    if order is not None:
        context["order"] = order
    kinds.check(kinds_for(event.type, settings), context)
    result = Plan()
    immediate = IMMEDIATE.get(event.type)
    if immediate is not None:
        result.messages.append(PlannedMessage(immediate, at.now, context))
    if reviews_triggered_by(event.type, settings):
        result.messages.extend(_review_pair(at.occurred_at, settings, history, context))
    if event.type in CANCELLING:
        assert event.order is not None
        result.cancel_order = event.order.id
    return result


def _review_pair(
    anchor: datetime, settings: Settings, history: ReviewHistory, context: dict[str, Any]
) -> list[PlannedMessage]:
    if history.order_has_pair:
        return []
    delays = (settings.review_products_delay, settings.review_service_delay)
    schedule = tuple(zip(REVIEW_KINDS, delays, strict=True))
    due = [(kind, scheduled_time(kind, anchor + delay, settings)) for kind, delay in schedule]
    if not timing.review_cap_allows(history.last_pair_at, due[0][1], settings.review_cap_days):
        return []
    return [PlannedMessage(kind, at, context) for kind, at in due]


def scheduled_time(kind: str, due: datetime, settings: Settings) -> datetime:
    """When a mail of ``kind`` due at ``due`` may actually leave, honouring the send window."""
    if kinds.get(kind).windowed:
        return timing.next_opening(due, settings.send_window, settings.zone)
    return due
