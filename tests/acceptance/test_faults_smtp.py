"""A flaky mail server: every message gets through once it can, with backoff, never twice.

The engine runs in-process against a real aiosmtpd whose handler fails on purpose (4xx
replies, connections dropped mid-DATA, stalls past the timeout, refusals, being down), and a
FrozenClock that the test advances between drains. Each drain may try a message at most once,
because a failed message is due again only after its backoff; so the attempt counts show there
is no hot retry loop, and they must fit within what the backoff schedule allows for the time
that passed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from notifier.clock import FrozenClock
from notifier.service import Notifier
from tests.conftest import START
from tests.faults import (
    Chaos,
    FaultySmtpServer,
    OutboxState,
    address,
    most_attempts,
    queue_messages,
    reconcile,
)

PENDING = {"scheduled", "retrying", "sending"}


@pytest.fixture
async def faulty() -> AsyncIterator[FaultySmtpServer]:
    server = FaultySmtpServer().start()
    yield server
    server.stop()


async def drain(engine: Notifier, clock: FrozenClock, step: timedelta, rounds: int = 200) -> int:
    """Dispatch, advance the clock by ``step``, and again, until nothing is pending.

    A second dispatch at the same instant must find nothing due: a failed message waits
    for its backoff. Returns the number of rounds.
    """
    for done in range(1, rounds + 1):
        await engine.dispatch_due()
        assert await engine.dispatch_due() == 0, "a failed message was retried at once"
        if not {row.status for row in engine.status().depth} & PENDING:
            return done
        clock.advance(step)
    raise AssertionError(f"still pending after {rounds} rounds")


def outbox_of(engine: Notifier, ids: list[str]) -> OutboxState:
    """The outbox as the engine shows it: each message in its customer's data export (status,
    attempts, Message-ID, the attempt log), and the queue's depth, which must count these
    messages alone. ``queue_messages`` gives each message its own customer, ``C-<id>``.

    Leases and releases are no customer's data; these tests do not look at them.
    """
    assert sum(row.count for row in engine.status().depth) == len(ids), "mail no test queued"
    exported = {}
    for message_id in ids:
        [message] = engine.privacy.export(f"C-{message_id}")["messages"]
        assert message["id"] == message_id
        exported[message_id] = message
    return OutboxState(
        status={key: message["status"] for key, message in exported.items()},
        attempts={key: message["attempts"] for key, message in exported.items()},
        leased=set(),
        released=set(),
        by_message_id={
            message["message_id_header"]: key
            for key, message in exported.items()
            if message["message_id_header"]
        },
        outcomes={
            key: [attempt["outcome"] for attempt in message["delivery_attempts"]]
            for key, message in exported.items()
            if message["delivery_attempts"]
        },
    )


def assert_backoff(engine: Notifier, clock: FrozenClock, ids: list[str]) -> dict[str, int]:
    """Every message's attempts fit the backoff schedule; the log has one row per attempt."""
    state = outbox_of(engine, ids)
    bound = most_attempts(clock.now() - START)
    assert max(state.attempts.values()) <= bound
    for message, attempts in state.attempts.items():
        outcomes = state.outcomes[message]
        assert len(outcomes) == attempts
        assert set(outcomes[:-1]) <= {"transient"}, outcomes
    return state.attempts


async def test_a_flaky_server_gets_every_message_once_and_550_is_final(
    make_engine: Callable[..., Notifier], faulty: FaultySmtpServer, clock: FrozenClock
) -> None:
    """A third of the DATA commands fail (451, 421, a dropped connection); 10 addresses
    are refused with 550, which fails them at once, without retry."""
    count, refused = 120, 10
    faulty.faults.chaos = Chaos(transient=0.25, drop=0.1)
    faulty.faults.reject = frozenset(address(index) for index in range(refused))
    engine = make_engine(smtp_port=faulty.port)
    # Arrangement: due mail planted straight in the outbox, one customer (and address) each.
    ids = queue_messages(engine.database, count, clock.now())

    await drain(engine, clock, timedelta(minutes=5))

    state = outbox_of(engine, ids)
    failed = {ids[index] for index in range(refused)}
    assert state.with_status("failed") == failed
    assert state.with_status("sent") == set(ids) - failed
    assert all(state.outcomes[message] == ["failed"] for message in failed)
    seen = reconcile(faulty, state)
    assert seen.delivered == set(ids) - failed and seen.twice == {}
    attempts = assert_backoff(engine, clock, ids)
    assert max(attempts.values()) >= 3, "the chaos never struck twice: the test proved little"
    assert faulty.handler.data_commands == sum(attempts.values()) - refused


async def test_a_server_that_stalls_past_the_timeout_is_retried(
    make_engine: Callable[..., Notifier], faulty: FaultySmtpServer, clock: FrozenClock
) -> None:
    """Three DATA commands hang longer than NOTIFIER_SMTP_TIMEOUT: those sends time out and
    are retried later; the stalled sessions accept nothing, so nothing arrives twice."""
    faulty.faults.stall, faulty.faults.stall_count = 3.0, 3
    engine = make_engine(smtp_port=faulty.port, smtp_timeout=0.5)
    # Arrangement: due mail planted straight in the outbox, one customer (and address) each.
    ids = queue_messages(engine.database, 10, clock.now())

    await engine.dispatch_due()
    retrying = [m for m in map(engine.get_message, ids) if m.status == "retrying"]
    assert len(retrying) == 3
    assert all("time" in (message.last_error or "").lower() for message in retrying)

    await drain(engine, clock, timedelta(minutes=2))
    state = outbox_of(engine, ids)
    assert state.with_status("sent") == set(ids)
    seen = reconcile(faulty, state)
    assert seen.delivered == set(ids) and seen.twice == {}
    assert sorted(assert_backoff(engine, clock, ids).values()) == [1] * 7 + [2] * 3


async def test_a_server_down_for_an_hour_then_back_gets_everything(
    make_engine: Callable[..., Notifier], clock: FrozenClock
) -> None:
    """While nothing listens, every try is a transient failure backing off; once the
    server is back, each message arrives exactly once."""
    server = FaultySmtpServer()  # not listening yet
    engine = make_engine(smtp_port=server.port)
    # Arrangement: due mail planted straight in the outbox, one customer (and address) each.
    ids = queue_messages(engine.database, 20, clock.now())
    step = timedelta(minutes=5)
    for _ in range(12):  # an hour of outage, one drain every five minutes
        await engine.dispatch_due()
        assert await engine.dispatch_due() == 0
        clock.advance(step)
    down = outbox_of(engine, ids)
    assert down.with_status("retrying") == set(ids)
    # 1+2+4+8+16 minutes (±25%) fit in an hour; a hot loop would have made twelve tries.
    assert 4 <= max(down.attempts.values()) <= most_attempts(timedelta(hours=1))
    assert "connect" in (engine.get_message(ids[0]).last_error or "")

    server.start()
    try:
        await drain(engine, clock, step)
        state = outbox_of(engine, ids)
        assert state.with_status("sent") == set(ids)
        seen = reconcile(server, state)
        assert seen.delivered == set(ids) and seen.twice == {}
        assert_backoff(engine, clock, ids)
    finally:
        server.stop()
