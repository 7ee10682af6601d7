"""The /v1 HTTP API through the real ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

import notifier
from notifier.clock import FrozenClock
from notifier.service import Notifier
from notifier.web import security
from notifier.web.limits import MAX_BODY
from tests.asgi import AUTH, api_client
from tests.conftest import START, customer, event, order
from tests.smtpd import SmtpServer

V1_ROUTES = [
    ("POST", "/v1/events"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/messages/msg_x"),
    ("DELETE", "/v1/messages/msg_x"),
    ("GET", "/v1/customers/C42/messages"),
]


@pytest.fixture
async def client(engine: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as client:
        yield client


def check(response: httpx.Response, status: int) -> dict[str, Any]:
    """The status is as expected, never a 5xx, and the body is JSON (an error has the one shape)."""
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if status >= 400:
        assert set(body) == {"error", "message", "fields"}, body
        assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body, dict)
    return body


async def history(client: httpx.AsyncClient, customer_id: str = "C42") -> list[dict[str, Any]]:
    response = await client.get(f"/v1/customers/{customer_id}/messages", headers=AUTH)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()
    return items


async def post_event(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    # json.dumps escapes non-ASCII, so a lone surrogate travels as the JSON escape "\\ud800".
    content = json.dumps(body).encode()
    return await client.post(
        "/v1/events", content=content, headers=AUTH | {"Content-Type": "application/json"}
    )


def message_request(
    id: str = "adhoc-1", kind: str = "order_confirmation", **changes: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": id, "kind": kind, "to": customer(), "context": {"order": order()}}
    body.update(changes)
    return body


# -- authentication ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer test-token-and-more"},
        {"Authorization": "Basic dGVzdC10b2tlbjo="},
        {"Authorization": "test-token"},
    ],
    ids=["none", "wrong", "empty", "prefix", "basic", "no-scheme"],
)
async def test_without_a_valid_token_401(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> None:
    content = json.dumps(event("order.placed")).encode() if method == "POST" else None
    response = await client.request(
        method, path, content=content, headers=headers | {"Content-Type": "application/json"}
    )
    body = check(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert body["error"] == "unauthorized"
    assert await history(client) == []


async def test_authentication_comes_before_body_parsing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    check(response, 401)


# -- POST /v1/events -------------------------------------------------------------------


async def test_post_event_202_with_the_contract_answer(client: httpx.AsyncClient) -> None:
    response = await post_event(client, event("order.placed", id="evt-8f2c"))
    body = check(response, 202)
    assert body["event_id"] == "evt-8f2c"
    [message] = body["messages"]
    assert {"id", "kind", "status", "send_after"} <= set(message)
    assert message["kind"] == "order_confirmation"
    assert message["status"] == "scheduled"
    assert message["send_after"] in ("2026-11-23T09:00:00Z", "2026-11-23T09:00:00+00:00")
    assert [m["id"] for m in await history(client)] == [message["id"]]


async def test_the_same_event_id_again_200_with_the_identical_body(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    first = await post_event(client, event("order.placed", id="evt-1"))
    check(first, 202)
    clock.advance(timedelta(minutes=5))
    again = await post_event(client, event("order.placed", id="evt-1"))
    check(again, 200)
    assert again.content == first.content
    # Even with a different body: the id is the idempotency key, the first answer stands.
    changed = await post_event(client, event("order.shipped", id="evt-1"))
    check(changed, 200)
    assert changed.json() == first.json()
    assert len(await history(client)) == 1


async def test_event_answers_list_every_queued_message(client: httpx.AsyncClient) -> None:
    body = check(await post_event(client, event("order.delivered", at=START)), 202)
    assert sorted(m["kind"] for m in body["messages"]) == ["review_products", "review_service"]
    assert all(m["status"] == "scheduled" for m in body["messages"])


def without_order() -> dict[str, Any]:
    body = event("order.placed")
    del body["order"]
    return body


def with_customer(**changes: Any) -> dict[str, Any]:
    return event("order.placed") | {"customer": customer() | changes}


def with_order(**changes: Any) -> dict[str, Any]:
    return event("order.placed") | {"order": order(**changes)}


INVALID_EVENTS: list[Any] = [
    pytest.param(with_customer(email="not-an-email"), "customer.email", id="bad-email"),
    pytest.param(with_customer(email="jan@"), "customer.email", id="email-no-domain"),
    pytest.param(
        with_customer(email="jan@example.nl\r\nBcc: x@y.z"), "customer.email", id="email-crlf"
    ),
    pytest.param(with_customer(email=""), "customer.email", id="empty-email"),
    pytest.param(event("order.exploded"), "type", id="unknown-type"),
    pytest.param(event("order.placed") | {"type": None}, "type", id="null-type"),
    pytest.param(without_order(), "order", id="order-event-without-order"),
    pytest.param(
        event("order.placed") | {"occurred_at": "2026-11-21T10:00:00"}, "occurred_at", id="naive"
    ),
    pytest.param(
        event("order.placed") | {"occurred_at": "2026-13-45T10:00:00+01:00"},
        "occurred_at",
        id="bad-date",
    ),
    pytest.param(
        event("order.shipped", data={"tracking_url": "javascript:alert(1)"}),
        "data.tracking_url",
        id="javascript-url",
    ),
    pytest.param(
        event("order.shipped", data={"tracking_url": "data:text/html,<script>"}),
        "data.tracking_url",
        id="data-url",
    ),
    pytest.param(
        event("order.shipped", data={"tracking_url": ["https://x.example"]}),
        "data.tracking_url",
        id="url-not-text",
    ),
    pytest.param(
        event("order.verification_requested", data={"question": "  "}),
        "data.question",
        id="blank-question",
    ),
    pytest.param(event("order.placed") | {"id": "   "}, "id", id="blank-id"),
    pytest.param(event("order.placed") | {"unexpected": 1}, "unexpected", id="extra-field"),
    pytest.param(with_customer(name="\ud800"), "customer.name", id="lone-surrogate"),
    pytest.param(with_order(total="NaN"), "order.total", id="nan-total"),
    pytest.param(with_order(total="1e999999"), "order.total", id="huge-total"),
    pytest.param(with_order(total="-1.00"), "order.total", id="negative-total"),
    pytest.param(with_order(currency="euro"), "order.currency", id="bad-currency"),
    pytest.param(
        with_order(lines=[{"sku": "X", "name": "X", "quantity": 10**30, "unit_price": "1"}]),
        "order.lines.0.quantity",
        id="huge-quantity",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID_EVENTS)
async def test_invalid_events_422_naming_the_field_and_writing_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = check(await post_event(client, body), 422)
    assert answer["error"] == "invalid_input"
    assert field in answer["fields"], answer
    assert all(isinstance(text, str) and text for text in answer["fields"].values())
    assert await history(client) == []
    # The refused id was not used up: a correct event with the same id is accepted.
    if isinstance(body.get("id"), str) and body["id"].strip():
        check(await post_event(client, event("order.placed", id=body["id"])), 202)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"id": "evt-1",', b"", b"[]", b"null", b'"text"', b"\x00"],
    ids=["garbage", "truncated", "empty", "list", "null", "string", "nul"],
)
async def test_malformed_bodies_422_body(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/v1/events", content=content, headers=AUTH | {"Content-Type": "application/json"}
    )
    answer = check(response, 422)
    assert "body" in answer["fields"]
    assert await history(client) == []


@pytest.mark.parametrize(
    "content",
    [b'{"id": "\xff"}', b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
    ids=["invalid-utf8", "deep-nesting"],
)
async def test_undecodable_bodies_422_body(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/v1/events", content=content, headers=AUTH | {"Content-Type": "application/json"}
    )
    assert response.status_code < 500
    assert await history(client) == []
    answer = check(response, 422)
    assert "body" in answer["fields"]


async def test_a_body_over_1_mib_with_content_length_413(client: httpx.AsyncClient) -> None:
    body = event("order.placed", data={"padding": "x" * MAX_BODY})
    response = await client.post("/v1/events", json=body, headers=AUTH)
    assert int(response.request.headers["content-length"]) > MAX_BODY
    answer = check(response, 413)
    assert answer["error"] == "too_large"
    assert await history(client) == []


async def test_a_streamed_body_over_1_mib_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"id": "evt-big", "type": "order.placed", "data": {"padding": "'
        for _ in range(20):
            yield b"x" * 65_536
        yield b'"}}'

    response = await client.post(
        "/v1/events", content=chunks(), headers=AUTH | {"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    answer = check(response, 413)
    assert answer["error"] == "too_large"
    assert await history(client) == []


async def test_a_body_just_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    body = event("order.placed", data={"padding": ""})
    overhead = len(json.dumps(body).encode())
    body["data"]["padding"] = "x" * (MAX_BODY - overhead - 100)
    response = await client.post("/v1/events", json=body, headers=AUTH)
    assert int(response.request.headers["content-length"]) <= MAX_BODY
    check(response, 202)


# -- the short path (web.post_event) and FastAPI's route answer alike ------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/vnd.shop+json"],
)
async def test_json_content_types_are_accepted(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/v1/events",
        content=json.dumps(event("order.placed")).encode(),
        headers=AUTH | {"Content-Type": content_type},
    )
    assert check(response, 202)["messages"][0]["kind"] == "order_confirmation"


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"}], ids=["none", "text"])
async def test_an_event_not_declared_json_422_body(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/events", content=json.dumps(event("order.placed")).encode(), headers=AUTH | headers
    )
    assert "body" in check(response, 422)["fields"]
    assert await history(client) == []


async def test_an_event_nested_deeper_than_the_short_path_reads_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    """pydantic's JSON parser stops at 200 levels; the route's json.loads takes the rest."""
    nested: list[Any] = []
    for _ in range(300):
        nested = [nested]
    check(await post_event(client, event("order.placed", data={"nested": nested})), 202)
    assert len(await history(client)) == 1


async def test_an_event_sent_in_chunks_is_accepted(client: httpx.AsyncClient) -> None:
    content = json.dumps(event("order.placed", id="evt-chunked")).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 100):
            yield content[start : start + 100]

    response = await client.post(
        "/v1/events", content=chunks(), headers=AUTH | {"Content-Type": "application/json"}
    )
    assert check(response, 202)["event_id"] == "evt-chunked"


async def test_the_answer_is_rendered_as_the_route_renders_it(client: httpx.AsyncClient) -> None:
    """Compact JSON, non-ASCII as UTF-8, the headers a JSONResponse has."""
    response = await post_event(client, event("order.placed", id="evt-ë"))
    check(response, 202)
    assert (
        response.content
        == json.dumps(response.json(), ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_other_methods_on_the_events_path_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events", headers=AUTH)
    assert check(response, 405)["error"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


# -- messages --------------------------------------------------------------------------


async def test_get_and_delete_an_unknown_message_404(client: httpx.AsyncClient) -> None:
    assert (
        check(await client.get("/v1/messages/msg_nope", headers=AUTH), 404)["error"] == "not_found"
    )
    check(await client.delete("/v1/messages/msg_nope", headers=AUTH), 404)


async def test_get_then_cancel_a_scheduled_message(client: httpx.AsyncClient) -> None:
    posted = check(await post_event(client, event("order.delivered", at=START)), 202)
    message_id = posted["messages"][0]["id"]
    shown = check(await client.get(f"/v1/messages/{message_id}", headers=AUTH), 200)
    assert shown["id"] == message_id and shown["status"] == "scheduled" and shown["attempts"] == 0
    cancelled = check(await client.delete(f"/v1/messages/{message_id}", headers=AUTH), 200)
    assert cancelled["status"] == "cancelled"
    assert check(await client.get(f"/v1/messages/{message_id}", headers=AUTH), 200)["status"] == (
        "cancelled"
    )
    again = check(await client.delete(f"/v1/messages/{message_id}", headers=AUTH), 409)
    assert again["error"] == "conflict"


async def test_a_sent_message_cannot_be_cancelled(
    client: httpx.AsyncClient, engine: Notifier, smtp_server: SmtpServer
) -> None:
    posted = check(await post_event(client, event("order.placed")), 202)
    message_id = posted["messages"][0]["id"]
    assert await engine.dispatch_due() == 1
    shown = check(await client.get(f"/v1/messages/{message_id}", headers=AUTH), 200)
    assert shown["status"] == "sent" and shown["attempts"] == 1 and shown["sent_at"]
    check(await client.delete(f"/v1/messages/{message_id}", headers=AUTH), 409)
    assert (
        check(await client.get(f"/v1/messages/{message_id}", headers=AUTH), 200)["status"] == "sent"
    )
    assert len(smtp_server.received) == 1


async def test_customer_history_is_newest_first(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    for type in ("order.placed", "order.verification_requested", "order.shipped"):
        check(await post_event(client, event(type)), 202)
        clock.advance(timedelta(minutes=1))
    kinds = [m["kind"] for m in await history(client)]
    assert kinds == ["shipping_notice", "verification_question", "order_confirmation"]
    assert await history(client, "C-unknown") == []


async def test_post_message_202_then_200_for_the_same_id(client: httpx.AsyncClient) -> None:
    first = check(await client.post("/v1/messages", json=message_request(), headers=AUTH), 202)
    assert first["id"] == "adhoc-1" and first["kind"] == "order_confirmation"
    assert first["status"] == "scheduled"
    again = check(await client.post("/v1/messages", json=message_request(), headers=AUTH), 200)
    assert again == first
    assert [m["id"] for m in await history(client)] == ["adhoc-1"]


async def test_post_message_waits_for_send_at_and_the_window(client: httpx.AsyncClient) -> None:
    late = (START + timedelta(days=1)).replace(hour=21)
    body = message_request(
        kind="review_products", send_at=late.isoformat(), context={"order": order()}
    )
    answer = check(await client.post("/v1/messages", json=body, headers=AUTH), 202)
    assert answer["send_after"].startswith("2026-11-25T08:00:00")  # 09:00 Amsterdam next day


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(message_request(kind="no_such_kind"), "kind", id="unknown-kind"),
        pytest.param(message_request(context={}), "context.order.number", id="missing-order"),
        pytest.param(
            message_request(context={"order": None}), "context.order.number", id="null-order"
        ),
        pytest.param(
            message_request(kind="review_products", context={"order": {"id": "O-1"}}),
            "context.order.number",
            id="incomplete-order",
        ),
        pytest.param(message_request(to=customer(email="nope")), "to.email", id="bad-email"),
        pytest.param(message_request(send_at="2026-11-24T10:00:00"), "send_at", id="naive"),
        pytest.param(message_request(id=""), "id", id="empty-id"),
    ],
)
async def test_invalid_messages_422_naming_the_field_and_writing_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    answer = check(await client.post("/v1/messages", json=body, headers=AUTH), 422)
    assert field in answer["fields"], answer
    assert await history(client) == []
    check(await client.get(f"/v1/messages/{body['id'] or 'x'}", headers=AUTH), 404)


@pytest.mark.parametrize("value", ["WP-1001", 5, ["O-1"]])
async def test_a_context_whose_order_is_not_an_object_422(engine: Notifier, value: object) -> None:
    async with api_client(engine, raise_app_exceptions=False) as client:
        body = message_request(kind="review_products", context={"order": value})
        response = await client.post("/v1/messages", json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        assert "context.order.number" in response.json()["fields"]


# -- mail that the mail system cannot carry must not stop the queue ----------------------


async def test_an_address_smtp_cannot_carry_is_refused_up_front(client: httpx.AsyncClient) -> None:
    odd_event = event("order.placed", customer=customer(id="C9", email="jöns@example.nl"))
    problem = check(await post_event(client, odd_event), 422)
    assert "customer.email" in problem["fields"]
    assert await history(client, "C9") == []


async def test_an_international_domain_is_sent_in_punycode(
    client: httpx.AsyncClient, engine: Notifier, smtp_server: SmtpServer
) -> None:
    check(
        await post_event(client, event("order.placed", customer=customer(email="jan@exämple.nl"))),
        202,
    )
    await engine.dispatch_due()
    assert [item.recipients for item in smtp_server.received] == [["jan@xn--exmple-cua.nl"]]


# -- ops -------------------------------------------------------------------------------


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert check(await client.get("/healthz"), 200) == {"status": "ok"}


async def test_api_answers_carry_each_security_header_once(client: httpx.AsyncClient) -> None:
    answers = [
        await client.get("/healthz"),
        await post_event(client, event("order.placed")),
        await client.get("/v1/messages/msg_x", headers=AUTH),
        await client.get("/v1/messages/msg_x"),
        await client.post("/v1/events", content=b"x" * 2_000_000, headers=AUTH),
    ]
    assert [answer.status_code for answer in answers] == [200, 202, 404, 401, 413]
    for answer in answers:
        for name, value in security.HEADERS.items():
            assert answer.headers.get_list(name) == [value], (answer.request.url, name)


async def test_a_page_with_its_own_policy_keeps_it() -> None:
    """The dev inbox sandboxes mail HTML with its own policy; the default must not replace it."""

    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        response = PlainTextResponse("mail", headers={"Content-Security-Policy": "sandbox"})
        await response(scope, receive, send)

    transport = httpx.ASGITransport(app=security.SecurityHeaders(page))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/")
    assert answer.headers.get_list("content-security-policy") == ["sandbox"]
    assert answer.headers["x-frame-options"] == "DENY"


CONTRACT_V1_PATHS = {
    "/v1/events",
    "/v1/messages",
    "/v1/messages/{message_id}",
    "/v1/customers/{customer_id}/messages",
    "/v1/customers/{customer_id}/preferences",
    "/v1/customers/{customer_id}",
    "/v1/customers/{customer_id}/export",
    "/v1/suppressions",
    "/v1/campaigns",
    "/v1/campaigns/{campaign_id}",
}


async def test_openapi_lists_every_v1_path_and_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    document = check(await client.get("/openapi.json"), 200)
    assert document["info"]["version"] == notifier.__version__
    paths = set(document["paths"])
    assert paths >= CONTRACT_V1_PATHS, sorted(CONTRACT_V1_PATHS - paths)
    schemes = document["components"]["securitySchemes"]
    bearer = [
        name for name, scheme in schemes.items() if scheme.get("scheme", "").lower() == "bearer"
    ]
    assert len(bearer) == 1 and schemes[bearer[0]]["type"] == "http"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/feedback/"):
                assert operation["security"] == [], "providers prove themselves their own way"
            elif path.startswith("/v1/"):
                assert {bearer[0]: []} in operation["security"], (path, operation)
                assert "401" in operation["responses"], path
            else:
                assert "security" not in operation, path
    post_events = document["paths"]["/v1/events"]["post"]
    assert {"200", "202", "401", "413", "422"} <= set(post_events["responses"])
