"""What each shop event queues, as a table: ``flows.events.plan`` for every event type and the
settings and history that change its answer.

The table is the specification: one row per situation, the mails it plans
with their due times, and the order whose unsent mail it cancels. Times are
Amsterdam wall-clock times, in November 2026 but for one row across the
change to summer time; Monday the 23rd at 10:00 is inside the default
09:00-20:00 window.

Every event here arrives as it happens (no ``occurred_at`` of its own), so its
time is both its arrival and its occurrence: immediate mail is due then and
review delays count from then. What an ``occurred_at`` in the past changes is
left to the intake's own tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifier.flows import events
from notifier.schemas import EventIn, EventType
from notifier.settings import Settings
from tests import conftest

AMS = ZoneInfo("Europe/Amsterdam")
ORDER = "O-1001"
PLACED, SHIPPED, VERIFY = "order.placed", "order.shipped", "order.verification_requested"
DELIVERED, CANCELLED, RETURNED = "order.delivered", "order.cancelled", "order.returned"
UPDATED, SUBSCRIBED = "customer.updated", "newsletter.subscribed"


def nov(day: int, hour: int, minute: int = 0, zone: tzinfo = AMS) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=zone)


def dec(day: int, hour: int, minute: int = 0, zone: tzinfo = AMS) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=zone)


MONDAY = nov(23, 10)
"""Inside the send window."""
NIGHT = nov(23, 23, 30)
"""Outside it: Monday 23:30."""
NO_HISTORY = events.ReviewHistory()

Planned = list[tuple[str, datetime]]


@dataclass(frozen=True)
class Row:
    """One row: an event of ``type`` arriving ``at`` plans ``planned`` and ``cancels`` an order."""

    name: str
    type: EventType
    at: datetime
    planned: Planned
    cancels: str | None
    history: events.ReviewHistory
    settings: dict[str, Any] = field(default_factory=dict)


def case(
    name: str,
    type: str,
    at: datetime,
    planned: Planned,
    *,
    cancels: str | None = None,
    history: events.ReviewHistory = NO_HISTORY,
    **settings: Any,
) -> Row:
    return Row(name, EventType(type), at, planned, cancels, history, settings)


def pair(products: datetime, service: datetime) -> Planned:
    return [("review_products", products), ("review_service", service)]


def last_pair(at: datetime) -> events.ReviewHistory:
    return events.ReviewHistory(last_pair_at=at)


EVERY_EVENT = [  # under the default settings, at a time inside the send window
    case("placed",           PLACED,     MONDAY, [("order_confirmation", MONDAY)]),
    case("shipped",          SHIPPED,    MONDAY, [("shipping_notice", MONDAY)]),
    case("verification",     VERIFY,     MONDAY, [("verification_question", MONDAY)]),
    case("delivered",        DELIVERED,  MONDAY, pair(nov(26, 10), dec(3, 10))),
    case("cancelled",        CANCELLED,  MONDAY, [], cancels=ORDER),
    case("returned",         RETURNED,   MONDAY, [], cancels=ORDER),
    case("customer-updated", UPDATED,    MONDAY, []),
    case("subscribed",       SUBSCRIBED, MONDAY, [("newsletter_confirm", MONDAY)]),
]  # fmt: skip

SEND_WINDOW = [  # immediate mail ignores the window; a review due outside it waits for it
    case("placed-at-night",        PLACED,     NIGHT,      [("order_confirmation", NIGHT)]),
    case("verification-at-night",  VERIFY,     NIGHT,      [("verification_question", NIGHT)]),
    case("subscribed-at-night",    SUBSCRIBED, NIGHT,      [("newsletter_confirm", NIGHT)]),
    case("reviews-due-at-night",   DELIVERED,  NIGHT,      pair(nov(27, 9), dec(4, 9))),
    case("reviews-due-at-dawn",    DELIVERED,  nov(23, 7), pair(nov(26, 9), dec(3, 9))),
    case("window-of-the-whole-day", DELIVERED, NIGHT,      pair(nov(26, 23, 30), dec(3, 23, 30)),
         send_window="00:00-24:00"),
    case("window-in-utc",          DELIVERED,  MONDAY,     pair(nov(26, 14, zone=UTC),
                                                                dec(3, 14, zone=UTC)),
         send_window="14:00-15:00", timezone="UTC"),
]  # fmt: skip

REVIEW_SETTINGS = [  # which event brings the pair, and its delays
    case("from-shipped-on-shipped",   SHIPPED,   MONDAY, [("shipping_notice", MONDAY),
                                                          *pair(nov(26, 10), dec(3, 10))],
         review_from="shipped"),
    case("from-shipped-on-delivered", DELIVERED, MONDAY, [], review_from="shipped"),
    case("own-delays",                DELIVERED, MONDAY, pair(MONDAY, nov(24, 10)),
         review_products_delay="0s", review_service_delay="1d"),
    case("delays-in-hours-over-dst",  DELIVERED, datetime(2026, 3, 26, 9, tzinfo=UTC),
         pair(datetime(2026, 3, 29, 11, tzinfo=AMS), datetime(2026, 4, 5, 11, tzinfo=AMS))),
]  # fmt: skip

REVIEW_CAP = [  # at most one pair per order, and none within review_cap_days of the last
    case("last-pair-90-days-before", DELIVERED, MONDAY, pair(nov(26, 10), dec(3, 10)),
         history=last_pair(nov(26, 10) - timedelta(days=90))),
    case("last-pair-89-days-before", DELIVERED, MONDAY, [],
         history=last_pair(nov(26, 10) - timedelta(days=89))),
    case("last-pair-still-due",      DELIVERED, MONDAY, [], history=last_pair(nov(30, 10))),
    case("cap-of-0-days",            DELIVERED, MONDAY, pair(nov(26, 10), dec(3, 10)),
         history=last_pair(nov(22, 10)), review_cap_days=0),
    case("order-has-a-pair",         DELIVERED, MONDAY, [],
         history=events.ReviewHistory(order_has_pair=True), review_cap_days=0),
    case("cap-spares-the-notice",    SHIPPED,   MONDAY, [("shipping_notice", MONDAY)],
         history=last_pair(nov(22, 10)), review_from="shipped"),
]  # fmt: skip


def plan(
    type: EventType, at: datetime, settings: Settings, history: events.ReviewHistory
) -> events.Plan:
    """The plan for the conftest's standard event of ``type`` arriving at ``at``."""
    event = EventIn.model_validate(conftest.event(type.value))
    order = event.order.model_dump(mode="json", exclude_none=True) if event.order else None
    return events.plan(event, events.Moment(now=at, occurred_at=at), settings, history, order)


@pytest.mark.parametrize(
    "row", [*EVERY_EVENT, *SEND_WINDOW, *REVIEW_SETTINGS, *REVIEW_CAP], ids=lambda row: row.name
)
def test_plan(row: Row) -> None:
    result = plan(row.type, row.at, Settings(**row.settings), row.history)
    assert [(message.kind, message.send_after) for message in result.messages] == row.planned
    assert result.cancel_order == row.cancels


def test_every_event_type_has_a_row() -> None:
    assert {row.type for row in EVERY_EVENT} == set(EventType)


def test_each_planned_mail_carries_the_events_order_and_data() -> None:
    result = plan(EventType.ORDER_SHIPPED, MONDAY, Settings(review_from="shipped"), NO_HISTORY)
    for message in result.messages:
        assert message.context["order"]["id"] == ORDER
        assert message.context["data"]["carrier"] == "PostNL"
