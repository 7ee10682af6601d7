"""One client's bad input never costs another client its event, through real HTTP.

Honest clients and clients posting text no database can store share one
``serve``-like app (uvicorn in a thread, keep-alive connections) and so the
same group commits. Before the input check a NUL in an id answered 500 on
PostgreSQL and failed the whole batch: honest clients got 500s and
connection resets, and their events were not stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from notifier.service import Notifier
from notifier.web.app import create_app
from tests import served
from tests.conftest import customer, event, order
from tests.smtpd import free_port

HONEST_CLIENTS = 8
POISON_CLIENTS = 2
POSTS = 15
AUTH = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}

Poison = Callable[[dict[str, Any]], str]
"""Spoils a valid event; returns the field the 422 must name."""


def nul_in(*path: str) -> Poison:
    def spoil(body: dict[str, Any]) -> str:
        *parents, last = path
        target = body
        for step in parents:
            target = target[step]
        target[last] = f"bad\x00{last}"
        return ".".join(path)

    return spoil


def nul_deep_in_data(body: dict[str, Any]) -> str:
    body["data"] = {"notes": ["fine", {"gift": "x\x00"}]}
    return "data.notes.1.gift"


def surrogate_in_name(body: dict[str, Any]) -> str:
    body["customer"]["name"] = "Jan \ud800"
    return "customer.name"


POISONS = [
    nul_in("id"),
    nul_in("customer", "id"),
    nul_in("customer", "name"),
    nul_in("order", "number"),
    nul_deep_in_data,
    surrogate_in_name,
]


async def honest(base: str, client_number: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client:
        statuses = []
        for number in range(POSTS):
            body = event(
                "order.placed",
                id=f"evt-{client_number}-{number}",
                customer=customer(id=f"C{client_number}"),
                order=order(id=f"O-{client_number}-{number}"),
            )
            response = await client.post("/v1/events", content=json.dumps(body))
            statuses.append(response.status_code)
        return statuses


async def poisoning(base: str, client_number: int) -> list[tuple[int, str, dict[str, Any]]]:
    """Each answer with the field it must name, and the fields it named."""
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client:
        answers = []
        for number in range(POSTS):
            body = event("order.placed", id=f"evt-poison-{client_number}-{number}")
            field = POISONS[number % len(POISONS)](body)
            response = await client.post("/v1/events", content=json.dumps(body))
            answers.append((response.status_code, field, response.json().get("fields", {})))
        return answers


async def test_poisoned_posts_cost_concurrent_honest_clients_nothing(
    make_engine: Callable[..., Notifier],
) -> None:
    engine = make_engine()
    app = create_app(engine, ["test-token"], run_worker=False)
    with served.serving(app, free_port()) as base:
        honest_clients = [asyncio.create_task(honest(base, n)) for n in range(HONEST_CLIENTS)]
        poisoners = [asyncio.create_task(poisoning(base, n)) for n in range(POISON_CLIENTS)]
        clients = [*honest_clients, *poisoners]
        try:
            await asyncio.gather(*clients)
        finally:  # a failed client must not leave the others' requests open at the stop
            for client in clients:
                client.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
    statuses = [status for client in honest_clients for status in client.result()]
    assert statuses == [202] * HONEST_CLIENTS * POSTS  # no collateral 500, no reset
    for status, field, fields in (answer for p in poisoners for answer in p.result()):
        assert status == 422 and field in fields, (status, field, fields)
    for number in range(HONEST_CLIENTS):
        stored = engine.customer_messages(f"C{number}")
        assert len(stored) == POSTS and {m.kind for m in stored} == {"order_confirmation"}
    assert engine.customer_messages("C42") == []  # the poisoned events' customer
