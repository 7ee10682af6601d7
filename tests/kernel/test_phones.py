"""No phone number is ever stored: phone-named fields are dropped at any depth, counted, logged."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from notifier import phones
from notifier.service import Notifier
from tests.asgi import AUTH, api_client
from tests.conftest import customer, event, order
from tests.ondisk import stored_bytes


@pytest.mark.parametrize(
    "name",
    [
        "phone",
        "Phone",
        "phone_number",
        "phoneNumber",
        "mobilePhone",
        "mobile_phone",
        "mobile",
        "telephone",
        "Telefoon",
        "telefoonnummer",
        "TelefoonNummer",
        "telefonnummer",
        "teléfono",
        "téléphone",
        "tel",
        "telnr",
        "tel_no",
        "gsm",
        "gsmnummer",
        "mobielnummer",
        "mobiel",
        "cell",
        "cellphone",
        "cell_phone",
        "fax",
        "faxnummer",
        "msisdn",
        "billing-phone",
        "PHONE",
        "contactPhone",
        "whatsapp",
    ],
)
def test_names_meaning_a_phone(name: str) -> None:
    assert phones.means_phone(name)


@pytest.mark.parametrize(
    "name",
    [
        "hotel",
        "cancellation",
        "automobile",
        "excellent",
        "telling",
        "title",
        "name",
        "street",
        "email",
        "carrier",
        "tracking_url",
        "question",
        "total",
        "postcode",
        "city",
        "sku",
    ],
)
def test_names_that_are_no_phone(name: str) -> None:
    assert not phones.means_phone(name)


def test_without_phones_names_each_path_and_copies() -> None:
    given = {"a": [{"tel": "1", "b": 2}], "phone": "3", "c": {"d": {"mobilePhone": "4"}}}
    cleaned, found = phones.without_phones(given, "data")
    assert cleaned == {"a": [{"b": 2}], "c": {"d": {}}}
    assert found == ["data.a[0].tel", "data.phone", "data.c.d.mobilePhone"]
    assert given["phone"] == "3"  # the input is left as it was
    assert phones.shape("order.lines[3].tel") == "order.lines[].tel"
    assert phones.section("order.lines[3].tel") == "order"


NUMBERS = [f"+31 6 1234 56{n:02d}" for n in range(20)]


def phone_everywhere() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A customer, order and data with a phone-named field at every depth, each its own number."""
    numbers = iter(NUMBERS)
    shopper = customer(id="C-TEL", phone=next(numbers), mobilePhone=next(numbers))
    placed = order(id="O-TEL", telefoonnummer=next(numbers))
    placed["shipping_address"] = placed["shipping_address"] | {
        "phone_number": next(numbers),
        "contact": {"gsm": next(numbers), "note": "ring twice"},
    }
    placed["billing_address"] = {"street": "Kerkstraat 1", "Telephone": next(numbers)}
    placed["lines"] = [line | {"tel": next(numbers)} for line in placed["lines"]]
    data = {
        "carrier": "PostNL",
        "tracking_url": "https://postnl.example/track/3SABC",
        "cell": next(numbers),
        "extra": {"contacts": [{"fax": next(numbers)}, {"mobile": next(numbers)}]},
    }
    return shopper, placed, data


@pytest.fixture
async def client(engine: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as client:
        yield client


def held(engine: Notifier, customer_id: str) -> str:
    """Everything the engine holds on the customer, decrypted, as text."""
    return json.dumps(engine.privacy.export(customer_id), ensure_ascii=False)


def leaked(text: str | bytes) -> list[str]:
    raw = text.encode() if isinstance(text, str) else text
    return [number for number in NUMBERS if number.encode() in raw]


async def test_event_phone_fields_at_every_depth_are_dropped(
    engine: Notifier, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    shopper, placed, data = phone_everywhere()
    caplog.set_level(logging.INFO)
    for kind in ("order.placed", "order.shipped"):
        body = event(kind, customer=shopper, order=placed, data=data)
        answer = await client.post("/v1/events", json=body, headers=AUTH)
        assert answer.status_code == 202, answer.text
    # Through FastAPI's own route too (a body that is not declared JSON takes that path).
    body = event("order.delivered", customer=shopper, order=placed, data=data)
    answer = await client.post(
        "/v1/events",
        content=json.dumps(body),
        headers=AUTH | {"Content-Type": "application/json; charset=utf-8"},
    )
    assert answer.status_code == 202, answer.text

    everything = held(engine, "C-TEL")
    assert "ring twice" in everything and "Kerkstraat 1" in everything  # the rest is kept
    assert leaked(everything) == []
    assert leaked(stored_bytes(engine)) == []
    assert leaked(caplog.text) == []
    logged = [r.getMessage() for r in caplog.records if "intake.phone_dropped" in r.getMessage()]
    paths = sorted(line.split("path=")[1].split()[0] for line in logged)
    assert paths == sorted(
        [
            "customer.phone",
            "customer.mobilePhone",
            "order.telefoonnummer",
            "order.shipping_address.phone_number",
            "order.shipping_address.contact.gsm",
            "order.billing_address.Telephone",
            "order.lines[].tel",
            "data.cell",
            "data.extra.contacts[].fax",
            "data.extra.contacts[].mobile",
        ]
    )  # each once, though three events carried them
    metrics = engine.metrics.render().decode()
    # 3 events, each: customer 2, order 6 (two lines), data 3
    assert 'notifier_phone_fields_dropped_total{section="customer"} 6.0' in metrics
    assert 'notifier_phone_fields_dropped_total{section="order"} 18.0' in metrics
    assert 'notifier_phone_fields_dropped_total{section="data"} 9.0' in metrics


async def test_message_phone_fields_at_every_depth_are_dropped(
    engine: Notifier, client: httpx.AsyncClient
) -> None:
    shopper, placed, data = phone_everywhere()
    body = {
        "id": "adhoc-tel",
        "kind": "order_confirmation",
        "to": shopper,
        "context": {"order": placed, "extra": data, "phone": NUMBERS[-1]},
    }
    answer = await client.post("/v1/messages", json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    everything = held(engine, "C-TEL")
    assert "ring twice" in everything
    assert leaked(everything) == []
    assert leaked(stored_bytes(engine)) == []
    metrics = engine.metrics.render().decode()
    assert 'notifier_phone_fields_dropped_total{section="to"} 2.0' in metrics
    assert 'notifier_phone_fields_dropped_total{section="context"} 10.0' in metrics


def test_python_api_drops_them_too(engine: Notifier) -> None:
    shopper, placed, data = phone_everywhere()
    engine.handle_event(event("order.placed", customer=shopper, order=placed, data=data))
    assert leaked(held(engine, "C-TEL")) == []


def test_the_export_says_no_phone_is_kept(engine: Notifier) -> None:
    engine.handle_event(event("order.placed", customer=customer(id="C-TEL")))
    assert "phone" in held(engine, "C-TEL").lower()
