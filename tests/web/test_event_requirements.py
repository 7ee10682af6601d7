"""A 202 is a promise: every event type by every field left out ends in a sent mail or a 422.

The rows come from the kinds table (``flows.kinds``) and the kinds each event
type queues (``flows.events.kinds_for``), so a kind that gains a field gains
its rows here. Each row posts through the real ASGI app and, if accepted,
delivers through the real SMTP server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from notifier.flows import events as event_flows
from notifier.flows import kinds
from notifier.schemas import EventType
from notifier.service import Notifier
from notifier.settings import PROJECT_DIR, Settings
from tests.asgi import api_client
from tests.conftest import START, customer, event, order
from tests.smtpd import SmtpServer, body_of

AUTH = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
SETTINGS = Settings(database_url="sqlite://", secret_key="x", encryption_key="x", api_tokens=["x"])
"""Only for building the table: the default review trigger (``delivered``)."""


def rows() -> list[Any]:
    """(event type, path left out or None, whether it is required) for every type."""
    table: list[Any] = []
    for event_type in EventType:
        queued = event_flows.kinds_for(event_type, SETTINGS)
        requires = dict.fromkeys(p for name in queued for p in kinds.get(name).requires)
        optional = dict.fromkeys(
            p for name in queued for p in kinds.get(name).optional if p not in requires
        )
        table.append(pytest.param(event_type.value, None, False, id=f"{event_type.value}-all"))
        table += [
            pytest.param(event_type.value, path, True, id=f"{event_type.value}-no-{path}")
            for path in requires
        ]
        table += [
            pytest.param(event_type.value, path, False, id=f"{event_type.value}-no-{path}")
            for path in optional
        ]
    return table


def without(body: dict[str, Any], path: str) -> dict[str, Any]:
    """``body`` with the dotted ``path`` removed (a step already absent is fine)."""
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = changed
    for step in parents:
        node = node.get(step) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)
    return changed


@pytest.fixture
async def client(
    make_engine: Callable[..., Notifier],
) -> AsyncIterator[tuple[httpx.AsyncClient, Notifier]]:
    # Reviews due at once, so each row's whole mail is sent within the test.
    engine = make_engine(review_products_delay="0s", review_service_delay="0s")
    async with api_client(engine) as http:
        yield http, engine


@pytest.mark.parametrize(("event_type", "left_out", "required"), rows())
async def test_every_field_left_out_ends_sent_or_422_naming_it(
    client: tuple[httpx.AsyncClient, Notifier],
    smtp_server: SmtpServer,
    event_type: str,
    left_out: str | None,
    required: bool,
) -> None:
    http, engine = client
    body = event(event_type)
    if left_out is not None:
        body = without(body, left_out)
    response = await http.post("/v1/events", content=json.dumps(body).encode(), headers=AUTH)
    assert response.status_code < 500, response.text
    if required:
        assert response.status_code == 422, response.text
        assert left_out in response.json()["fields"], response.json()
        assert engine.customer_messages("C42") == []
        return
    assert response.status_code == 202, response.text
    queued = response.json()["messages"]
    await engine.dispatch_due()
    statuses = {m.kind: (m.status, m.last_error) for m in engine.customer_messages("C42")}
    assert statuses == {m["kind"]: ("sent", None) for m in queued}
    assert len(smtp_server.received) == len(queued)


async def test_a_blank_required_text_counts_as_missing(
    client: tuple[httpx.AsyncClient, Notifier],
) -> None:
    http, engine = client
    for body, field in [
        (event("order.placed", order=order(number="   ")), "order.number"),
        (event("order.verification_requested", data={"question": "\t "}), "data.question"),
    ]:
        response = await http.post("/v1/events", content=json.dumps(body).encode(), headers=AUTH)
        assert response.status_code == 422, response.text
        assert field in response.json()["fields"]
    assert engine.customer_messages("C42") == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({"tracking_url": "http://[::1"}, "data.tracking_url", id="unclosed-ipv6"),
        pytest.param({"tracking_url": "ftp://x.example/t"}, "data.tracking_url", id="ftp"),
        pytest.param({"tracking_url": "x" * 2001}, "data.tracking_url", id="too-long"),
        pytest.param({"carrier": 42}, "data.carrier", id="carrier-not-text"),
    ],
)
async def test_data_given_is_still_checked(
    client: tuple[httpx.AsyncClient, Notifier], data: dict[str, Any], field: str
) -> None:
    http, engine = client
    body = event("order.shipped", data=data)
    response = await http.post("/v1/events", content=json.dumps(body).encode(), headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]
    assert engine.customer_messages("C42") == []


async def test_a_question_over_5000_characters_is_refused(
    client: tuple[httpx.AsyncClient, Notifier],
) -> None:
    http, _ = client
    body = event("order.verification_requested", data={"question": "?" * 5001})
    response = await http.post("/v1/events", content=json.dumps(body).encode(), headers=AUTH)
    assert response.status_code == 422
    assert "data.question" in response.json()["fields"]


@pytest.mark.parametrize(
    ("kind", "context", "field"),
    [
        ("order_confirmation", {"order": order(total=None)}, "context.order.total"),
        ("order_confirmation", {"order": order(number="")}, "context.order.number"),
        ("verification_question", {"order": order(), "data": {}}, "context.data.question"),
        ("newsletter", {"newsletter": {}}, "context.newsletter.title"),
    ],
)
async def test_ad_hoc_messages_follow_the_same_table(
    client: tuple[httpx.AsyncClient, Notifier], kind: str, context: dict[str, Any], field: str
) -> None:
    http, engine = client
    body = {"id": "adhoc-1", "kind": kind, "to": customer(), "context": context}
    response = await http.post("/v1/messages", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"], response.json()
    assert engine.customer_messages("C42") == []


async def test_an_ad_hoc_shipping_notice_needs_no_carrier_or_address(
    client: tuple[httpx.AsyncClient, Notifier], smtp_server: SmtpServer
) -> None:
    http, engine = client
    context = {"order": {"id": "O-1", "number": "WP-1"}, "data": {}}
    body = {"id": "adhoc-2", "kind": "shipping_notice", "to": customer(), "context": context}
    response = await http.post("/v1/messages", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    await engine.dispatch_due()
    assert engine.get_message("adhoc-2").status == "sent"
    assert "WP-1" in body_of(smtp_server.received[0].message, "plain")


async def test_openapi_shows_the_rules_per_event_type(
    client: tuple[httpx.AsyncClient, Notifier],
) -> None:
    http, _ = client
    document = (await http.get("/openapi.json")).json()
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    mapping = body["schema"]["discriminator"]["mapping"]
    assert set(mapping) == {event_type.value for event_type in EventType}
    schemas = document["components"]["schemas"]

    def schema_of(event_type: str) -> dict[str, Any]:
        found: dict[str, Any] = schemas[mapping[event_type].rsplit("/", 1)[1]]
        return found

    placed = schema_of("order.placed")
    assert "order" in placed["required"]
    assert placed["x-requires"] == ["order.number", "order.total"]
    assert "order.shipping_address" in placed["x-optional"]
    shipped = schema_of("order.shipped")
    assert {"data.carrier", "data.tracking_url"} <= set(shipped["x-optional"])
    question = schema_of("order.verification_requested")["properties"]["data"]
    assert question["required"] == ["question"]
    assert "order" not in schema_of("customer.updated")["required"]


async def test_immediate_mail_is_due_on_arrival_whatever_occurred_at_says(
    client: tuple[httpx.AsyncClient, Notifier], smtp_server: SmtpServer
) -> None:
    """A shop clock an hour fast (or local time labelled UTC) holds back no confirmation."""
    http, engine = client
    ahead = (START + timedelta(hours=1)).isoformat()
    body = event("order.placed") | {"occurred_at": ahead}
    answer = await http.post("/v1/events", content=json.dumps(body).encode(), headers=AUTH)
    assert answer.status_code == 202
    [message] = answer.json()["messages"]
    assert message["send_after"].startswith("2026-11-23T09:00:00")  # START, in UTC
    assert await engine.dispatch_due() == 1
    assert len(smtp_server.received) == 1


async def test_review_delays_count_from_occurred_at(make_engine: Callable[..., Notifier]) -> None:
    engine = make_engine()
    delivered = START - timedelta(days=2)
    engine.handle_event(event("order.delivered", at=delivered))
    due = {m.kind: m.send_after for m in engine.customer_messages("C42")}
    assert due["review_products"] == delivered + timedelta(days=3)


OUT_OF_RANGE = ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00+14:00", "1999-12-31T23:59:59Z"]


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_an_occurred_at_out_of_range_is_422_not_500(
    client: tuple[httpx.AsyncClient, Notifier], moment: str
) -> None:
    http, engine = client
    for event_type in ("order.placed", "order.delivered", "newsletter.subscribed"):
        body = event(event_type) | {"occurred_at": moment}
        response = await http.post("/v1/events", content=json.dumps(body).encode(), headers=AUTH)
        assert response.status_code == 422, response.text
        assert "occurred_at" in response.json()["fields"]
    assert engine.customer_messages("C42") == []


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
async def test_a_send_at_out_of_range_is_422_not_500(
    client: tuple[httpx.AsyncClient, Notifier], moment: str
) -> None:
    http, engine = client
    message = {
        "id": "adhoc-far",
        "kind": "review_products",
        "to": customer(),
        "context": {"order": order()},
        "send_at": moment,
    }
    answer = await http.post("/v1/messages", json=message, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert "send_at" in answer.json()["fields"]
    campaign = {
        "id": "far",
        "subjects": {"nl": "Nieuws"},
        "content": {"title": "Nieuws"},
        "send_at": moment,
    }
    answer = await http.post("/v1/campaigns", json=campaign, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert "send_at" in answer.json()["fields"]
    assert engine.customer_messages("C42") == []


def test_the_readme_table_matches_the_kinds_table() -> None:
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    for kind in kinds.KINDS.values():
        requires = ", ".join(f"`{path}`" for path in kind.requires) or "—"
        optional = ", ".join(f"`{path}`" for path in kind.optional) or "—"
        assert f"| `{kind.name}` | {requires} | {optional} |" in readme, kind.name
