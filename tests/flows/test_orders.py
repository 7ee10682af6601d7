"""Orders are remembered: later events carry only ``order.id`` and what is new.

Through the engine and the real SMTP server, on SQLite and PostgreSQL: the
snapshot merges across events and within one group commit, never crosses to
another customer, is sealed, exported, erased with the customer and purged
by retention.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy

from notifier import errors
from notifier.clock import FrozenClock
from notifier.service import Notifier
from notifier.store.models import Order
from tests.batches import one_batch
from tests.conftest import customer, event, order
from tests.smtpd import SmtpServer, body_of

TRACKING = {"carrier": "PostNL", "tracking_url": "https://postnl.example/track/3SABC"}


def only_id(order_id: str = "O-1001", **news: Any) -> dict[str, Any]:
    return {"id": order_id, **news}


def known_orders(engine: Notifier, customer_id: str = "C42") -> list[str]:
    """The ids of the orders the engine remembers for the customer, as their export shows them."""
    return [known["order"]["id"] for known in engine.privacy.export(customer_id)["orders"]]


def context_of(engine: Notifier, kind: str, customer_id: str = "C42") -> dict[str, Any]:
    exported = engine.privacy.export(customer_id)
    [message] = [m for m in exported["messages"] if m["kind"] == kind]
    context: dict[str, Any] = message["context"]
    return context


async def test_a_later_event_needs_only_the_order_id_and_what_is_new(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.handle_event(event("order.placed"))
    assert await engine.dispatch_due() == 1
    engine.handle_event(event("order.shipped", order=only_id(), data=TRACKING))
    assert await engine.dispatch_due() == 1
    shipped = smtp_server.received[1].message
    text = body_of(shipped, "plain")
    assert "WP-1001" in shipped["Subject"]
    assert "Remblokken voor" in text and "Ruitenwissers Bosch" in text
    assert TRACKING["tracking_url"] in text
    assert {m.status for m in engine.customer_messages("C42")} == {"sent"}


def test_an_unknown_order_without_what_its_kind_needs_is_422(engine: Notifier) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        engine.handle_event(event("order.shipped", order=only_id(), data=TRACKING))
    assert caught.value.field == "order.number"
    with pytest.raises(errors.InvalidInput) as caught:
        engine.handle_event(event("order.placed", order=only_id(number="WP-1")))
    assert caught.value.field == "order.total"
    assert engine.customer_messages("C42") == []
    assert stored_orders(engine) == []


def test_events_that_need_nothing_are_accepted_for_an_unknown_order(engine: Notifier) -> None:
    for type in ("order.cancelled", "order.returned"):
        assert engine.handle_event(event(type, order=only_id("O-9"))).created


def test_news_is_merged_over_the_snapshot(engine: Notifier) -> None:
    engine.handle_event(event("order.placed", order=order(currency="USD")))
    new_lines = [{"sku": "OLIE-5W30", "name": "Motorolie", "quantity": 1, "unit_price": "40.00"}]
    new_address = {"name": "Jan de Vries", "city": "Amersfoort"}
    engine.handle_event(
        event(
            "order.verification_requested",
            order=only_id(lines=new_lines, shipping_address=new_address, number=None),
            data={"question": "Past dit?"},
        )
    )
    known = context_of(engine, "verification_question")["order"]
    assert known["number"] == "WP-1001"  # null means: no news
    assert known["total"] == "123.45" and known["currency"] == "USD"
    assert [line["sku"] for line in known["lines"]] == ["OLIE-5W30"]  # lines replace lines
    assert known["shipping_address"] == new_address  # an address is replaced whole
    # The snapshot itself moved on: the next event sees the merged order.
    engine.handle_event(event("order.shipped", order=only_id()))
    assert context_of(engine, "shipping_notice")["order"] == known


def test_one_group_sees_its_earlier_events_of_the_order(
    engine: Notifier, database_url: str
) -> None:
    callers = one_batch(
        engine,
        database_url,
        [
            event("order.placed", order=order(id="O-1")),
            event("order.shipped", order=only_id("O-2")),  # unknown: refused
            event("order.shipped", order=only_id("O-1"), data=TRACKING),
            event("order.delivered", order=only_id("O-1")),
        ],
    )
    assert [type(caller.error).__name__ for caller in callers] == [
        "NoneType",
        "InvalidInput",
        "NoneType",
        "NoneType",
    ]
    assert context_of(engine, "shipping_notice")["order"]["number"] == "WP-1001"
    # The refused event left no snapshot behind: O-2 is still unknown.
    assert known_orders(engine) == ["O-1"]
    with pytest.raises(errors.InvalidInput):
        engine.handle_event(event("order.shipped", order=only_id("O-2")))


def test_another_customers_order_id_is_another_order(engine: Notifier) -> None:
    """The safe choice: an order is known only under the customer who sent it, so an
    event of another customer naming its id reads nothing of it (and needs what is new)."""
    engine.handle_event(event("order.placed"))
    stranger = customer(id="C7", email="piet@example.nl", name="Piet")
    with pytest.raises(errors.InvalidInput) as caught:
        engine.handle_event(event("order.shipped", customer=stranger, order=only_id()))
    assert caught.value.field == "order.number"
    engine.handle_event(event("order.placed", customer=stranger, order=order(number="WP-7")))
    assert context_of(engine, "order_confirmation", "C7")["order"]["number"] == "WP-7"
    engine.handle_event(event("order.shipped", order=only_id()))
    assert context_of(engine, "shipping_notice")["order"]["number"] == "WP-1001"


def stored_orders(engine: Notifier) -> list[tuple[str, str]]:
    """Every order row, whoever's: what is left where no customer's export can look."""
    # Storage: the rows themselves, of all customers, also those no longer (or never) known.
    with engine.database.engine.connect() as connection:
        rows = connection.execute(sqlalchemy.select(Order.customer_id, Order.order_id)).all()
    return [(customer_id, order_id) for customer_id, order_id in rows]


def test_the_snapshot_is_sealed_and_exported(engine: Notifier) -> None:
    engine.handle_event(event("order.placed"))
    # Storage: the ciphertext at rest; the export below shows it opened.
    with engine.database.engine.connect() as connection:
        [sealed] = connection.execute(sqlalchemy.select(Order.snapshot)).scalars().all()
    assert b"Dorpsstraat" not in sealed and b"WP-1001" not in sealed
    [exported] = engine.privacy.export("C42")["orders"]
    assert exported["order"]["shipping_address"]["street"] == "Dorpsstraat 1"


def test_erasure_forgets_the_orders(engine: Notifier) -> None:
    engine.handle_event(event("order.placed"))
    engine.privacy.erase("C42")
    assert stored_orders(engine) == []
    with pytest.raises(errors.InvalidInput) as caught:
        engine.handle_event(event("order.shipped", order=only_id()))
    assert caught.value.field == "order.number"


def test_retention_purges_orders_no_event_touched(
    make_engine: Callable[..., Notifier], clock: FrozenClock
) -> None:
    engine = make_engine(retention_days=30)
    engine.handle_event(event("order.placed", order=order(id="O-old")))
    clock.advance(timedelta(days=20))
    engine.handle_event(event("order.placed", order=order(id="O-new")))
    clock.advance(timedelta(days=15))
    engine.privacy.purge_expired()
    assert known_orders(engine) == ["O-new"]
    with pytest.raises(errors.InvalidInput):
        engine.handle_event(event("order.shipped", order=only_id("O-old")))
    assert engine.handle_event(event("order.shipped", order=only_id("O-new"))).created
