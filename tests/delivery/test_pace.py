"""Sending at the pace a relay accepts, measured against a real aiosmtpd sink."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from notifier.clock import FrozenClock
from notifier.delivery import pace
from notifier.delivery.transport import SmtpConfig, SmtpTransport
from notifier.service import Notifier
from notifier.vocabulary import MessageStatus
from tests.campaigns import CONTENT, add_subscribers
from tests.conftest import order
from tests.faults import queue_messages
from tests.smtpd import RecordingHandler, SmtpServer

MESSAGE = b"From: a@example.nl\r\nTo: b@example.nl\r\nSubject: x\r\n\r\nbody\r\n"


class LimitedHandler(RecordingHandler):
    """A relay allowing ``limit`` messages in any second, answering 454 past it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.accepted_at: collections.deque[float] = collections.deque()
        self.refused = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.monotonic()
        with self.lock:
            while self.accepted_at and now - self.accepted_at[0] > 1.0:
                self.accepted_at.popleft()
            if len(self.accepted_at) >= self.limit:
                self.refused += 1
                return "454 4.7.0 Too many messages, slow down"
            self.accepted_at.append(now)
        return await super().handle_DATA(server, session, envelope)


def serve(handler: RecordingHandler) -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.handler = handler
    server._controller.handler = handler
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[SmtpServer]:
    yield from serve(RecordingHandler())


@pytest.fixture
def limited_sink() -> Iterator[SmtpServer]:
    yield from serve(LimitedHandler(100))


def transport(server: SmtpServer, rate: float, burst: int | None = None) -> SmtpTransport:
    return SmtpTransport(
        SmtpConfig(host=server.host, port=server.port, tls="none", rate=rate, rate_burst=burst)
    )


async def send_all(sender: SmtpTransport, count: int) -> float:
    start = time.monotonic()
    try:
        await asyncio.gather(
            *(sender.send("a@example.nl", [f"b{n}@example.nl"], MESSAGE) for n in range(count))
        )
    finally:
        await sender.close()
    return time.monotonic() - start


def on_fake_time(rate: float, burst: int | None = None) -> tuple[pace.Pace, list[float]]:
    """A pace whose clock only moves when it sleeps, and the sleeps it asked for."""
    clock = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    return pace.Pace(rate, burst, monotonic=lambda: clock[0], sleep=sleep), slept


@pytest.mark.slow
async def test_a_thousand_mails_at_200_per_second_never_go_faster(sink: SmtpServer) -> None:
    """Against a real relay, the pace is a floor; how close to it a machine gets is not tested
    here (a loaded CI machine sent them in 6.4 s), the schedule itself is, below."""
    took = await send_all(transport(sink, 200), 1000)
    assert len(sink.received) == 1000
    assert took >= 4.5, f"took {took:.2f} s"


async def test_a_thousand_mails_at_200_per_second_are_given_five_seconds_no_more() -> None:
    paced, slept = on_fake_time(200)
    for _ in range(1000):
        await paced.take()
    assert sum(slept) == pytest.approx(999 / 200)


@pytest.mark.slow
async def test_a_relay_answering_454_past_100_per_second_gets_every_mail(
    limited_sink: SmtpServer,
) -> None:
    sender = transport(limited_sink, 200, burst=1)
    await send_all(sender, 400)
    handler = limited_sink.handler
    assert isinstance(handler, LimitedHandler)
    assert len(limited_sink.received) == 400
    assert handler.refused > 0


def test_throttling_replies_are_told_from_other_temporary_failures() -> None:
    assert pace.is_throttling(454, "4.7.0 Too many messages, slow down")
    assert pace.is_throttling(421, "4.7.0 Rate limit exceeded")
    assert not pace.is_throttling(451, "4.3.0 Local error in processing")
    assert not pace.is_throttling(550, "Too many recipients")


async def test_the_pace_slows_down_then_ramps_up() -> None:
    paced, slept = on_fake_time(100, 1)
    for _ in range(5):
        await paced.take()
    assert sum(slept) == pytest.approx(0.04)
    assert paced.slow_down() == pytest.approx(1 / 50)
    paced.slow_down()
    paced.slow_down()
    paced.slow_down()
    assert paced.rate == 10  # never below a tenth
    for _ in range(18):
        paced.accepted()
    assert paced.rate == 100


@pytest.mark.slow
async def test_the_engine_meets_a_relay_answering_454_past_100_per_second_without_failed_mail(
    make_engine: Callable[..., Notifier], limited_sink: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(smtp_port=limited_sink.port, smtp_rate=200, smtp_rate_burst=1)
    # Arrangement: 300 due mails planted straight in the outbox.
    ids = queue_messages(engine.database, 300, clock.now())
    assert await engine.dispatch_due() == 300
    handler = limited_sink.handler
    assert isinstance(handler, LimitedHandler) and handler.refused > 0
    assert len(limited_sink.received) == 300
    messages = [engine.get_message(message_id) for message_id in ids]
    statuses = {message.status for message in messages}
    attempts = {message.attempts for message in messages}
    assert statuses == {MessageStatus.SENT} and attempts == {1}


@pytest.mark.slow
async def test_order_mail_keeps_its_priority_inside_the_rate(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer
) -> None:
    """A newsletter backlog takes seconds at the relay's pace; an order mail does not wait."""
    engine = make_engine(smtp_rate=20, batch_size=25)
    add_subscribers(engine, 100)
    engine.newsletters.create({"id": "winter", "subjects": {"nl": "Winter"}, "content": CONTENT})
    assert engine.newsletters.advance() == 100
    await engine.start()
    try:
        draining = asyncio.create_task(engine.dispatch_due())
        async with asyncio.timeout(30):
            while len(smtp_server.received) < 10:
                await asyncio.sleep(0.005)
        engine.send_message(
            {
                "id": "urgent",
                "kind": "order_confirmation",
                "to": {"id": "C-urgent", "email": "urgent@example.nl", "locale": "nl"},
                "context": {"order": order(), "data": {}},
            }
        )
        assert await draining >= 100
    finally:
        # A started engine left running keeps its heartbeat task, which would open a
        # connection after the fixture disposed the pool: a leaked one, seen by a later test.
        await engine.stop()
    arrival = [received.recipients[0] for received in smtp_server.received]
    # At 20 a second the backlog left takes four and a half seconds. The order mail waits
    # for the sends under way (one per connection, 8) and what passes while it is claimed
    # and rendered, not for the senders of the batches claimed behind them (8 each, 2).
    assert arrival.index("urgent@example.nl") < 10 + 8 + 8, arrival.index("urgent@example.nl")
    assert len(arrival) == 101
