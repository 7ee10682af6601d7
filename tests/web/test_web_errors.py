"""Error answers name no internals: a database's host, port or driver error goes to the log only."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from notifier.clock import FrozenClock
from notifier.service import Notifier
from notifier.settings import Settings
from notifier.web.app import create_app
from tests.conftest import event
from tests.smtpd import free_port

AUTH = {"Authorization": "Bearer test-token"}
INTERNALS = ("127.0.0.1", "5432", "port", "connection to server", "psycopg", "Operational")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_unreachable_database_answers_503_without_internals(
    make_settings: Callable[..., Settings],
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    engine = Notifier(make_settings(database_url=nowhere), clock=clock)
    caplog.set_level(logging.WARNING)
    try:
        app = create_app(engine, ["test-token"], run_worker=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            answers = [
                await client.post("/v1/events", json=event("order.placed"), headers=AUTH),
                await client.get("/v1/messages/msg_x", headers=AUTH),
                await client.get("/v1/customers/C42/export", headers=AUTH),
                await client.get("/readyz"),
            ]
    finally:
        await engine.stop()
        engine.close()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        for internal in INTERNALS:
            assert internal not in answer.text, (answer.request.url.path, answer.text)
    assert answers[0].json()["error"] == "unavailable"
    assert "try again" in answers[0].json()["message"]
    assert "request.failed" in caplog.text and "connection" in caplog.text  # the log has it
