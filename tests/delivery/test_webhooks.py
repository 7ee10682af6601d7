"""Signed webhooks to the shop: a real receiver verifies every signature, goes down, comes back."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifier.clock import FrozenClock, SystemClock
from notifier.delivery import webhooks as sender
from notifier.service import Notifier
from tests.conftest import event
from tests.smtpd import SmtpServer, free_port

SECRET = "whsec_" + base64.b64encode(b"a shared secret of the shop!!!!!").decode()


class Receiver:
    """The shop's endpoint on 127.0.0.1: verifies with ``standardwebhooks``, answers ``status``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/notifier"
        self.received: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.rejected: list[str] = []
        self.status = 204
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    payload = Webhook(SECRET).verify(body, dict(self.headers.items()))
                except WebhookVerificationError as exc:
                    receiver.rejected.append(str(exc))
                    self.send_response(400)
                else:
                    if receiver.status < 300:
                        receiver.received.append(payload)
                        receiver.ids.append(self.headers["webhook-id"])
                    self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def clock() -> FrozenClock:
    """Frozen at the real time: the receiver checks the signed timestamp against its own clock."""
    return FrozenClock(SystemClock().now())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.up()
    yield receiver
    receiver.down()


@pytest.fixture
def engine(make_engine: Callable[..., Notifier], receiver: Receiver) -> Notifier:
    return make_engine(webhook_url=receiver.url, webhook_secret=SECRET)


async def test_events_reach_the_shop_signed_with_ids_only(
    engine: Notifier, receiver: Receiver, smtp_server: SmtpServer
) -> None:
    accepted = engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    engine.choices.update("C42", {"reviews": False}, source="account")

    assert await engine.deliver_webhooks() == 2
    assert receiver.rejected == []
    by_type = {payload["type"]: payload for payload in receiver.received}
    message_id = accepted.body["messages"][0]["id"]
    assert by_type["message.sent"]["data"] == {
        "message_id": message_id,
        "customer_id": "C42",
        "kind": "order_confirmation",
    }
    unsubscribed = by_type["customer.unsubscribed"]["data"]
    assert unsubscribed["category"] == "reviews" and unsubscribed["source"] == "account"
    assert "jan" not in json.dumps(receiver.received).lower()
    assert await engine.deliver_webhooks() == 0, "delivered events are not sent again"
    assert 'notifier_webhook_deliveries_total{outcome="delivered"} 2.0' in (
        engine.metrics.render().decode()
    )


async def test_a_shop_that_is_down_for_a_minute_loses_nothing_and_gets_no_duplicates(
    engine: Notifier, receiver: Receiver, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    for number in range(3):
        engine.handle_event(
            event(
                "order.placed",
                customer={
                    "id": f"C{number}",
                    "email": f"k{number}@example.nl",
                    "name": "K",
                    "locale": "nl",
                },
            )
        )
    await engine.dispatch_due()
    receiver.down()
    assert await engine.deliver_webhooks() == 0  # refused: retried in 5 s
    clock.advance(timedelta(seconds=5))
    assert await engine.deliver_webhooks() == 0  # still down: retried in 30 s
    clock.advance(timedelta(seconds=30))
    assert await engine.deliver_webhooks() == 0  # still down: retried in 2 min
    receiver.up()  # back after about a minute
    clock.advance(timedelta(seconds=25))
    assert await engine.deliver_webhooks() == 0, "nothing is due before its backoff ends"
    clock.advance(timedelta(minutes=2))
    assert await engine.deliver_webhooks() == 3
    assert receiver.rejected == []
    assert len(receiver.ids) == len(set(receiver.ids)) == 3
    assert 'notifier_webhook_events{status="delivered"} 3.0' in engine.metrics.render().decode()

    # A replay sends them again, with the same ids, so the shop can tell.
    assert engine.replay_webhooks(timedelta(hours=2)) == 3
    assert await engine.deliver_webhooks() == 3
    assert sorted(receiver.ids[3:]) == sorted(receiver.ids[:3])


async def test_events_survive_a_restart(
    make_engine: Callable[..., Notifier], receiver: Receiver, smtp_server: SmtpServer
) -> None:
    first = make_engine(webhook_url=receiver.url, webhook_secret=SECRET)
    first.handle_event(event("order.placed"))
    await first.dispatch_due()
    await first.stop()
    first.close()
    second = make_engine(webhook_url=receiver.url, webhook_secret=SECRET)
    assert await second.deliver_webhooks() == 1
    assert [payload["type"] for payload in receiver.received] == ["message.sent"]


async def test_an_event_the_shop_keeps_refusing_fails_after_a_day(
    engine: Notifier, receiver: Receiver, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    receiver.status = 500
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    started = clock.now()
    for wait in (timedelta(0), *sender.BACKOFF):
        clock.advance(wait)
        assert await engine.deliver_webhooks() == 0
    assert timedelta(hours=23) < clock.now() - started < timedelta(days=1)
    assert 'notifier_webhook_events{status="failed"} 1.0' in engine.metrics.render().decode()
    clock.advance(timedelta(days=1))
    receiver.status = 204
    assert await engine.deliver_webhooks() == 0, "a failed event waits for a replay"


@pytest.mark.parametrize(("attempts", "wait"), [(1, 5), (2, 30), (10, 28800), (11, None)])
def test_the_backoff(attempts: int, wait: int | None) -> None:
    now = SystemClock().now()
    due = sender.next_attempt(attempts, now)
    assert (due - now if due else None) == (timedelta(seconds=wait) if wait else None)


async def test_a_refused_mail_is_told_as_failed(
    engine: Notifier, receiver: Receiver, smtp_server: SmtpServer
) -> None:
    smtp_server.fail_next("550 5.1.1 no such user")
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    assert await engine.deliver_webhooks() == 1
    [payload] = receiver.received
    assert payload["type"] == "message.failed" and payload["data"]["kind"] == "order_confirmation"
