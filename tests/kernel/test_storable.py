"""Text no database can store is a 422 naming the field, at any depth, and nothing is stored.

Through the real ASGI app on SQLite and PostgreSQL: every input model of
``notifier.schemas``, the short path for JSON events and FastAPI's path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy

from notifier import storable
from notifier.service import Notifier
from tests.asgi import AUTH, api_client
from tests.conftest import customer, event, order

NUL = "\x00"
SURROGATE = "\ud800"
"""An unpaired surrogate: JSON can carry it as ``"\\ud800"``, UTF-8 cannot."""

Change = Callable[[dict[str, Any]], None]


def at(*path: str | int, text: str = NUL, key: bool = False) -> Change:
    """Put ``text`` into a body at ``path`` (as the last key there, if ``key``)."""

    def change(body: dict[str, Any]) -> None:
        *parents, last = path
        target: Any = body
        for step in parents:
            target = target.setdefault(step, {}) if isinstance(step, str) else target[step]
        if key:
            target[f"{last}{text}"] = "value"
        else:
            target[last] = f"x{text}y"

    return change


def nested(*path: str | int, text: str = NUL) -> Change:
    """``data``-like content: a list under ``path[0]`` whose second entry holds ``text``."""

    def change(body: dict[str, Any]) -> None:
        container: Any = body
        for step in path[:-1]:
            container = container.setdefault(step, {})
        container[path[-1]] = ["fine", {"deep": [f"x{text}"]}]

    return change


EVENT_CASES = [
    ("id", at("id")),
    ("customer.id", at("customer", "id")),
    ("customer.name", at("customer", "name")),
    ("customer.locale", at("customer", "locale")),
    ("order.id", at("order", "id")),
    ("order.number", at("order", "number")),
    ("order.lines.0.name", at("order", "lines", 0, "name")),
    ("order.lines.1.sku", at("order", "lines", 1, "sku")),
    ("order.lines.0.note", at("order", "lines", 0, "note")),  # an extra field of the shop
    ("order.shipping_address.city", at("order", "shipping_address", "city")),
    ("order.gift_note", at("order", "gift_note")),
    ("data.notes.1.deep.0", nested("data", "notes")),
    ("data.carrier", at("data", "carrier")),
    ("data.carrier", at("data", "carrier", text=SURROGATE)),
    ("data.notes.1.deep.0", nested("data", "notes", text=SURROGATE)),
    (f"data.bad{NUL}.[key]", at("data", "bad", key=True)),
    (f"order.bad{NUL}.[key]", at("order", "bad", key=True)),
    ("customer.name", at("customer", "name", text=SURROGATE)),
]


@pytest.fixture
async def client(engine: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as client:
        yield client


def stored_rows(database_url: str) -> dict[str, int]:
    """The tables that hold any row (aside from the schema's version and the readiness probe's)."""
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.NullPool)
    try:
        with engine.connect() as connection:
            tables = sqlalchemy.inspect(connection).get_table_names()
            counts = {
                table: connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table in tables
                if table not in ("alembic_version", "readiness")
            }
    finally:
        engine.dispose()
    return {table: count for table, count in counts.items() if count}


def refused(response: httpx.Response, field: str) -> None:
    """A 422 in the one error shape whose ``fields`` name ``field`` as unstorable text."""
    assert response.status_code == 422, (field, response.text)
    body = response.json()
    assert set(body) == {"error", "message", "fields"} and body["error"] == "invalid_input"
    assert field in body["fields"], (field, body["fields"])
    # pydantic's own check of a declared string finds an unpaired surrogate first.
    reasons = ("NUL", "surrogate", "unable to parse raw data as a unicode string")
    assert any(reason in body["fields"][field] for reason in reasons), body["fields"][field]


def raw_json(body: dict[str, Any]) -> bytes:
    """The body as a shop's encoder writes it: an unpaired surrogate as a ``\\ud800`` escape."""
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/vnd.shop+json"],
    ids=["short path", "fastapi path"],
)
async def test_an_event_with_unstorable_text_is_refused_naming_the_field(
    client: httpx.AsyncClient, database_url: str, content_type: str
) -> None:
    """One engine for the table: an engine and its schema cost more than all the posts."""
    headers = AUTH | {"Content-Type": content_type}
    for field, change in EVENT_CASES:
        body = event("order.shipped", order=order(), customer=customer())
        change(body)
        refused(await client.post("/v1/events", content=raw_json(body), headers=headers), field)
    assert stored_rows(database_url) == {}


def message() -> dict[str, Any]:
    return {"id": "msg-1", "kind": "order_confirmation", "to": customer(), "context": {}}


def campaign() -> dict[str, Any]:
    return {"id": "camp-1", "subjects": {"nl": "Nieuws"}, "content": {"blocks": []}}


def choices() -> dict[str, Any]:
    return {"newsletter": True, "ip": "192.0.2.1", "consent_text_version": "v1"}


def suppression() -> dict[str, Any]:
    return {"email": "jan@example.nl", "reason": "manual", "detail": "asked by phone"}


OTHER_CASES = [
    ("POST", "/v1/messages", message, "id", at("id")),
    ("POST", "/v1/messages", message, "to.id", at("to", "id")),
    (
        "POST",
        "/v1/messages",
        message,
        "context.order.lines.1.deep.0",
        nested("context", "order", "lines"),
    ),
    ("POST", "/v1/messages", message, "kind", at("kind", text=SURROGATE)),
    ("POST", "/v1/campaigns", campaign, "id", at("id")),
    ("POST", "/v1/campaigns", campaign, "subjects.nl", at("subjects", "nl")),
    ("POST", "/v1/campaigns", campaign, f"subjects.de{NUL}.[key]", at("subjects", "de", key=True)),
    ("POST", "/v1/campaigns", campaign, "content.blocks.1.deep.0", nested("content", "blocks")),
    ("POST", "/v1/campaigns", campaign, "cron", at("cron")),
    ("POST", "/v1/suppressions", suppression, "detail", at("detail")),
    ("PUT", "/v1/customers/C42/preferences", choices, "ip", at("ip")),
    (
        "PUT",
        "/v1/customers/C42/preferences",
        choices,
        "consent_text_version",
        at("consent_text_version"),
    ),
]


async def test_every_input_model_refuses_unstorable_text_naming_the_field(
    client: httpx.AsyncClient, database_url: str
) -> None:
    headers = AUTH | {"Content-Type": "application/json"}
    for method, path, make, field, change in OTHER_CASES:
        body = make()
        change(body)
        response = await client.request(method, path, content=raw_json(body), headers=headers)
        refused(response, field)
    assert stored_rows(database_url) == {}


async def test_a_path_parameter_with_a_nul_is_refused_naming_it(
    client: httpx.AsyncClient,
) -> None:
    refused(await client.get("/v1/customers/C%00/messages", headers=AUTH), "path.customer_id")


async def test_text_a_database_can_store_passes_untouched(
    client: httpx.AsyncClient, engine: Notifier
) -> None:
    """Emoji (a surrogate pair in JSON), control characters other than NUL, any script."""
    text = "\U0001f600 \u00e9\u4e2d\t\x01 ok"
    body = event("order.placed", customer=customer(name=text), data={"note": [text]})
    headers = AUTH | {"Content-Type": "application/json"}
    response = await client.post("/v1/events", content=raw_json(body), headers=headers)
    assert response.status_code == 202, response.text
    assert engine.privacy.export("C42")["customer"]["name"] == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("plain", None),
        ("caf\u00e9 \U0001f600", None),
        ("a\x00b", "NUL"),
        ("\u00e9\x00", "NUL"),
        ("\udfff", "surrogate"),
        ("\ud83d", "surrogate"),
    ],
)
def test_refusal_names_the_character(text: str, reason: str | None) -> None:
    found = storable.refusal(text)
    assert (found is None) if reason is None else (found is not None and reason in found)
