"""The dispatcher under a backlog: batches overlap, and mail just queued does not wait behind it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

import pytest

from notifier.clock import FrozenClock
from notifier.delivery.dispatcher import EXPRESS_AHEAD, DispatchConfig, Dispatcher
from notifier.delivery.transport import SmtpConfig, SmtpTransport
from notifier.service import Notifier
from notifier.store import outbox
from notifier.vocabulary import MessageStatus
from tests.conftest import customer, event, order, until
from tests.faults import Faults, FaultySmtpServer, queue_messages
from tests.smtpd import SmtpServer

BACKLOG = 600
BATCH = EXPRESS_AHEAD
"""Two batches under way are more than ``EXPRESS_AHEAD``: urgent mail takes the express lane."""
URGENT = "urgent@example.nl"


async def drain_backlog(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> asyncio.Task[int]:
    """Queue ``BACKLOG`` due confirmations and start draining them; returns once mail flows."""
    await engine.start()
    # Arrangement: a backlog planted straight in the outbox, one address per message.
    queue_messages(engine.database, BACKLOG, clock.now(), prefix="backlog")
    draining = asyncio.create_task(engine.dispatch_due())
    await until(lambda: len(smtp_server.received) >= 20)
    return draining


async def assert_overtaken(draining: asyncio.Task[int], smtp_server: SmtpServer) -> None:
    """The urgent mail arrived early, sent once, and not by the drain but by the express lane."""
    assert await draining == BACKLOG
    await until(lambda: len(smtp_server.received) == BACKLOG + 1)
    arrival = [received.recipients[0] for received in smtp_server.received]
    # Queued last, due no earlier than the rest: in the queue it would have come last.
    assert arrival.index(URGENT) < BACKLOG // 3
    assert set(smtp_server.count_by_message_id().values()) == {1}


def leased_until(engine: Notifier, message_id: str = "stalled-0") -> datetime | None:
    """When the message's lease runs out: no look-up shows a lease, so the outbox is read."""
    # Bookkeeping: the lease's expiry column, which only workers see.
    with engine.database.transaction() as session:
        message = outbox.get(session, message_id)
        assert message is not None
        return message.lease_expires_at


def queue_urgent(engine: Notifier) -> str:
    accepted = engine.send_message(
        {
            "id": "urgent",
            "kind": "order_confirmation",
            "to": {"id": "C-urgent", "email": URGENT, "name": "Spoed", "locale": "nl"},
            "context": {"order": order(), "data": {}},
        }
    )
    assert accepted.created
    return "urgent"


async def test_mail_named_in_a_wake_overtakes_the_backlog_in_the_express_lane(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(batch_size=BATCH)
    draining = await drain_backlog(engine, smtp_server, clock)

    engine.dispatcher.wake(express=[queue_urgent(engine)])

    await assert_overtaken(draining, smtp_server)
    assert engine.get_message("urgent").status == "sent"


async def test_an_order_confirmation_accepted_mid_backlog_takes_the_express_lane(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(batch_size=BATCH)
    draining = await drain_backlog(engine, smtp_server, clock)

    placed = event("order.placed", customer=customer(id="C-urgent", email=URGENT))
    assert (await engine.handle_event_async(placed)).created

    await assert_overtaken(draining, smtp_server)


async def test_an_express_wake_with_no_drain_running_sends_the_mail_once(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer
) -> None:
    """The express lane and the drain the wake also starts both look; one of them sends it."""
    engine = make_engine()
    await engine.start()
    urgent = queue_urgent(engine)
    engine.dispatcher.wake(express=[urgent])
    await until(lambda: engine.get_message(urgent).status == "sent")
    assert await engine.dispatch_due() == 0
    assert len(smtp_server.received) == 1


async def test_stopping_mid_backlog_hands_back_every_batch_under_way(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(batch_size=BATCH)
    draining = await drain_backlog(engine, smtp_server, clock)

    await engine.stop()
    sent = await draining

    statuses = [row.status for row in engine.status().depth]
    assert "sending" not in statuses, "a batch under way kept its lease"
    assert sent == len(smtp_server.received) < BACKLOG
    assert set(smtp_server.count_by_message_id().values()) == {1}


async def test_a_drain_keeps_renewing_the_leases_of_what_it_holds(
    make_engine: Callable[..., Notifier], clock: FrozenClock
) -> None:
    """A send stalled past most of the lease must not let another worker take the batch."""
    engine = make_engine()
    server = FaultySmtpServer(Faults(stall=1.0, stall_count=1)).start()
    lease = timedelta(seconds=30)
    transport = SmtpTransport(SmtpConfig("127.0.0.1", server.port, tls="none"))
    # Arrangement: a second dispatcher of its own on the engine's database, renewing often.
    dispatcher = Dispatcher(
        engine.database,
        engine.sealer,
        engine.assembler,
        transport,
        clock,
        DispatchConfig(owner="slow-worker", lease=lease, renew_every=timedelta(seconds=0.05)),
    )
    # Arrangement: one due mail planted straight in the outbox.
    queue_messages(engine.database, 1, clock.now(), prefix="stalled")
    try:
        draining = asyncio.create_task(dispatcher.run_once())
        await until(lambda: leased_until(engine) is not None)
        first = leased_until(engine)
        clock.advance(timedelta(seconds=25))
        await until(lambda: leased_until(engine) == clock.now() + lease)
        assert first is not None and first < clock.now() + lease
        assert await draining == 1
    finally:
        await dispatcher.stop()
        await transport.close()  # its idle connection, before the server goes
        server.stop()
    assert engine.get_message("stalled-0").status == "sent"


async def test_each_outcome_is_committed_when_its_send_ends_not_when_the_batch_does(
    make_engine: Callable[..., Notifier], clock: FrozenClock
) -> None:
    """One send of a batch stalls; the other's ``sent`` is in the database meanwhile, so a
    crash then would repeat only the stalled one (issue 18: at most what was in flight)."""
    server = FaultySmtpServer(Faults(stall=3.0, stall_count=1)).start()
    engine = make_engine(smtp_port=server.port)
    # Arrangement: two due mails planted straight in the outbox.
    ids = queue_messages(engine.database, 2, clock.now(), prefix="pair")
    try:
        draining = asyncio.create_task(engine.dispatch_due())

        def statuses() -> set[str]:
            return {engine.get_message(message_id).status for message_id in ids}

        await until(lambda: statuses() == {"sent", "sending"})
        assert not draining.done()
        assert await draining == 2
        assert statuses() == {"sent"}
    finally:
        await engine.stop()  # its connections closed before the server goes
        server.stop()


async def test_a_renewal_calls_lost_only_what_was_taken_over_not_what_finished_meanwhile(
    make_engine: Callable[..., Notifier], clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Under load a renewal waits seconds for its thread and the write lock, while the sends
    go on: a message whose outcome was committed meanwhile is missing from the renewal's
    answer too. The bench logged ``dispatch.lease_lost messages=481`` for such mail, with no
    takeover on record; only a message still held and owned by another worker is lost."""
    engine = make_engine()
    transport = SmtpTransport(SmtpConfig("127.0.0.1", 9, tls="none"))  # never connected
    config = DispatchConfig(owner="busy-worker", renew_every=timedelta(hours=1))
    # Arrangement: a dispatcher of its own, whose renewal the test holds back.
    dispatcher = Dispatcher(
        engine.database, engine.sealer, engine.assembler, transport, clock, config
    )
    # Arrangement: three due mails planted straight in the outbox.
    finished, taken, kept = queue_messages(engine.database, 3, clock.now(), prefix="held")
    assert len(await dispatcher._claim(3)) == 3
    entered, resume = threading.Event(), threading.Event()
    renew = dispatcher._renew

    def renew_late(held: Collection[str]) -> set[str]:
        entered.set()
        assert resume.wait(30)
        return renew(held)

    dispatcher._renew = renew_late  # type: ignore[method-assign]
    recorder = dispatcher._pipeline._recorder
    try:
        confirming = asyncio.create_task(dispatcher._confirm())
        assert await asyncio.to_thread(entered.wait, 30)
        # While the renewal waits: one send ends and its outcome is committed ...
        recorder.add(MessageStatus.SENT, outbox.Outcome(id=finished, attempt=1, smtp_code=250))
        await recorder.flush()
        # ... and another worker takes one message over (its lease had run out).
        # Arrangement: a rival worker's lease, taken as a worker takes it.
        with engine.database.transaction() as session:
            outbox.lease_due(
                session,
                owner="rival",
                now=clock.now() + config.lease + timedelta(seconds=1),
                limit=1,
                lease=config.lease,
                only=[taken],
            )
        with caplog.at_level(logging.WARNING):
            resume.set()
            await confirming
        lost = [r.getMessage() for r in caplog.records if "lease_lost" in r.getMessage()]
        assert lost == ["dispatch.lease_lost messages=1"]
        assert not await dispatcher.held(taken)
        assert await dispatcher.held(kept)
    finally:
        resume.set()
        await dispatcher.stop()
    assert engine.get_message(finished).status == "sent"
