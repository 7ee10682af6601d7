"""Suppressions, looked up one address at a time and lifted with a reason, through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from notifier.service import Notifier
from notifier.store.models import SuppressionLift
from tests.asgi import api_client
from tests.conftest import event
from tests.smtpd import SmtpServer


@pytest.fixture
async def client(engine: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine, authorized=True) as client:
        yield client


async def test_a_suppression_is_found_by_address_and_lifted_with_its_reason(
    engine: Notifier, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    posted = await client.post(
        "/v1/suppressions", json={"email": "Jan@Example.nl", "reason": "hard_bounce"}
    )
    assert posted.status_code == 200
    found = await client.get("/v1/suppressions", params={"email": "jan@example.nl"})
    assert found.status_code == 200
    assert found.json()["reason"] == "hard_bounce" and "email" not in found.json()

    lifted = await client.delete(
        "/v1/suppressions/jan@example.nl", params={"reason": "customer fixed the mailbox"}
    )
    assert lifted.status_code == 200
    assert lifted.json() == {
        "status": "lifted",
        "previous_reason": "hard_bounce",
        "reason": "customer fixed the mailbox",
    }
    assert (await client.get("/v1/suppressions?email=jan@example.nl")).status_code == 404
    # Storage: the lift's audit trail, kept by keyed hash; no look-up lists lifts.
    with engine.database.transaction() as session:
        [row] = session.scalars(select(SuppressionLift))
        assert (row.previous_reason, row.reason) == ("hard_bounce", "customer fixed the mailbox")
        assert "jan" not in row.email_index
    # Mail reaches the address again.
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    assert len(smtp_server.received) == 1


async def test_bad_lookups_are_clear_4xx(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/suppressions")).status_code == 422
    bad = await client.get("/v1/suppressions", params={"email": "not-an-address"})
    assert bad.status_code == 422 and "query.email" in bad.json()["fields"]
    unknown = await client.delete("/v1/suppressions/piet@example.nl", params={"reason": "x"})
    assert unknown.status_code == 404
    no_reason = await client.delete("/v1/suppressions/piet@example.nl")
    assert no_reason.status_code == 422 and "query.reason" in no_reason.json()["fields"]
    blank = await client.delete("/v1/suppressions/piet@example.nl", params={"reason": " "})
    assert blank.status_code in (404, 422)
