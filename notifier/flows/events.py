"""From a shop event to outbox operations: which mails, due when, what to cancel.

``plan`` is pure: the service looks up the little history it needs (the
customer's last review pair, whether the order already has one) and passes
it in, then carries the plan out in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from notifier import errors
from notifier.flows import kinds, timing
from notifier.schemas import EventIn, EventType
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
    """Checks that depend on the event type, beyond what the schema can say."""
    if event.type in ORDER_EVENTS and event.order is None:
        raise errors.InvalidInput(f"{event.type} needs an order", "order")
    if event.type is EventType.ORDER_VERIFICATION_REQUESTED:
        question = event.data.get("question")
        if not isinstance(question, str) or not question.strip():
            raise errors.InvalidInput("the question for the customer is required", "data.question")
        if len(question) > 5000:
            raise errors.InvalidInput("at most 5000 characters", "data.question")
    if event.type is EventType.ORDER_SHIPPED:
        for name in ("carrier", "tracking_url"):
            value = event.data.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > 2000):
                raise errors.InvalidInput(
                    "must be a text of at most 2000 characters", f"data.{name}"
                )
        url = event.data.get("tracking_url")
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise errors.InvalidInput("must be an http or https URL", "data.tracking_url")


def reviews_triggered_by(event_type: EventType, settings: Settings) -> bool:
    trigger = (
        EventType.ORDER_SHIPPED if settings.review_from == "shipped" else EventType.ORDER_DELIVERED
    )
    return event_type is trigger


def plan(event: EventIn, occurred_at: datetime, settings: Settings, history: ReviewHistory) -> Plan:
    """The outbox operations ``event`` calls for. ``occurred_at`` is the event's time (aware)."""
    validate(event)
    result = Plan()
    context = _context(event)
    immediate = IMMEDIATE.get(event.type)
    if immediate is not None:
        result.messages.append(PlannedMessage(immediate, occurred_at, context))
    if reviews_triggered_by(event.type, settings):
        result.messages.extend(_review_pair(occurred_at, settings, history, context))
    if event.type in CANCELLING:
        assert event.order is not None
        result.cancel_order = event.order.id
    return result


def _review_pair(
    anchor: datetime, settings: Settings, history: ReviewHistory, context: dict[str, Any]
) -> list[PlannedMessage]:
    if history.order_has_pair:
        return []
    schedule = (
        ("review_products", settings.review_products_delay),
        ("review_service", settings.review_service_delay),
    )
    due = [(kind, scheduled_time(kind, anchor + delay, settings)) for kind, delay in schedule]
    if not timing.review_cap_allows(history.last_pair_at, due[0][1], settings.review_cap_days):
        return []
    return [PlannedMessage(kind, at, context) for kind, at in due]


def scheduled_time(kind: str, due: datetime, settings: Settings) -> datetime:
    """When a mail of ``kind`` due at ``due`` may actually leave, honouring the send window."""
    if kinds.get(kind).windowed:
        return timing.next_opening(due, settings.send_window, settings.zone)
    return due


def _context(event: EventIn) -> dict[str, Any]:
    context: dict[str, Any] = {"data": event.data}
    if event.order is not None:
        context["order"] = event.order.model_dump(mode="json", exclude_none=True)
    return context
