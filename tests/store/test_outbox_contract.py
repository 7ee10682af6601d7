"""The outbox's contract, clause by clause, on SQLite and PostgreSQL alike.

``notifier.store.outbox`` is the state machine at the centre: every status
change of a message happens there. Each test below names one clause of its
contract and checks it through the module's public functions only, on both
databases, with a frozen clock (a lease expires because the clock moves, never
because a test slept). The attempt log is read from its table: no public
function reads it back yet.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import delete, select

from notifier import errors
from notifier.clock import FrozenClock
from notifier.crypto import Sealer
from notifier.service import Notifier
from notifier.store import outbox, workers
from notifier.store.db import Database, Session
from notifier.store.models import DeliveryAttempt, Message, MessageStatus
from tests.conftest import START, TEST_ENCRYPTION_KEY

LEASE = timedelta(minutes=5)
HEARTBEAT = timedelta(seconds=10)
TICK = timedelta(microseconds=1)
A, B, C = "worker-a", "worker-b", "worker-c"
MARKS = ["sent", "retrying", "failed", "suppressed"]
"""The statuses an attempt may end in, as ``outbox.record`` is keyed."""


@dataclass
class Outbox:
    """The outbox's public functions, each in a transaction of its own, at the clock's time."""

    database: Database
    sealer: Sealer
    clock: FrozenClock

    def add(self, *ids: str, priority: int = 0, due_in: timedelta = timedelta(0)) -> None:
        now = self.clock.now()
        new = [
            outbox.NewMessage(
                id=message_id,
                customer_id="C42",
                kind="order_confirmation",
                category="order_updates",
                send_after=now + due_in,
                context={"order": {"number": message_id}},
                created_at=now,
                priority=priority,
            )
            for message_id in ids
        ]
        with self.database.transaction() as session:
            outbox.add(session, self.sealer, new)

    def claim(
        self, owner: str, limit: int = 100, *, within: Session | None = None, **options: Any
    ) -> list[outbox.Claimed]:
        """Claim in a transaction of its own, or ``within`` one the caller keeps open."""
        if within is None:
            with self.database.transaction() as session:
                return self.claim(owner, limit, within=session, **options)
        now = self.clock.now()
        leased = outbox.lease_due(within, owner=owner, now=now, limit=limit, lease=LEASE, **options)
        return outbox.claimed(within, self.sealer, leased)

    def mark(self, status: str, owner: str, claimed: outbox.Claimed, **outcome: Any) -> None:
        if status == "retrying":
            outcome.setdefault("retry_at", self.clock.now() + timedelta(minutes=1))
        with self.database.transaction() as session:
            item = outbox.Outcome(claimed.id, claimed.attempt, **outcome)
            outbox.record(session, owner, {MessageStatus(status): [item]}, self.clock.now())

    def beat(self, worker: str) -> None:
        with self.database.transaction() as session:
            workers.beat(session, worker, self.clock.now())

    def leave(self, worker: str) -> None:
        with self.database.transaction() as session:
            workers.leave(session, worker)

    def claim_alive(self, owner: str) -> list[outbox.Claimed]:
        """Claim as a worker does: beating, and taking over workers silent for ``HEARTBEAT``."""
        self.beat(owner)
        return self.claim(owner, dead_before=self.clock.now() - HEARTBEAT)

    def release(self, owner: str, *ids: str) -> None:
        with self.database.transaction() as session:
            outbox.release(session, owner, ids, self.clock.now())

    def renew(self, owner: str, *ids: str) -> set[str]:
        with self.database.transaction() as session:
            return outbox.renew_leases(session, owner, ids, self.clock.now(), LEASE)

    def cancel(self, message_id: str) -> Message:
        with self.database.transaction() as session:
            return outbox.cancel(session, message_id, self.clock.now())

    def row(self, message_id: str) -> Message:
        with self.database.transaction() as session:
            row = outbox.get(session, message_id)
            assert row is not None
            session.expunge(row)
            return row

    def log(self, message_id: str) -> list[tuple[int, str, str | None]]:
        """The attempt log of one message: (attempt, outcome, worker), in writing order."""
        query = (
            select(DeliveryAttempt.attempt, DeliveryAttempt.outcome, DeliveryAttempt.worker)
            .where(DeliveryAttempt.message_id == message_id)
            .order_by(DeliveryAttempt.id)
        )
        with self.database.transaction() as session:
            return [(row.attempt, row.outcome, row.worker) for row in session.execute(query)]

    def taken_over(self) -> tuple[outbox.Claimed, outbox.Claimed]:
        """Message m1 claimed by A, whose lease expired, and then by B: both claims."""
        self.add("m1")
        (first,) = self.claim(A)
        self.clock.advance(LEASE + TICK)
        (second,) = self.claim(B)
        return first, second


@pytest.fixture
def box(database: Database, clock: FrozenClock) -> Outbox:
    return Outbox(database, Sealer([TEST_ENCRYPTION_KEY], "test-secret-key"), clock)


def ids(claimed: Sequence[outbox.Claimed]) -> list[str]:
    return [message.id for message in claimed]


# -- queueing ------------------------------------------------------------------------------


def test_add_queues_scheduled_untried_with_its_context_sealed(box: Outbox) -> None:
    box.add("m1")
    row = box.row("m1")
    assert (row.status, row.attempts, row.created_at) == (MessageStatus.SCHEDULED, 0, START)
    # JSON quotes never occur in a Fernet token (url-safe base64): no chance match of "m1".
    assert row.context is not None and b'"m1"' not in row.context
    assert (row.lease_owner, row.first_attempt_at, row.sent_at) == (None, None, None)


# -- claim order ---------------------------------------------------------------------------


def test_claim_takes_priority_first_then_the_longest_due(box: Outbox) -> None:
    box.add("news-old", priority=2, due_in=-timedelta(hours=3))
    box.add("review-new", priority=1, due_in=-timedelta(minutes=1))
    box.add("review-old", priority=1, due_in=-timedelta(hours=2))
    box.add("order-new", priority=0)
    box.add("order-old", priority=0, due_in=-timedelta(minutes=30))
    assert ids(box.claim(A)) == ["order-old", "order-new", "review-old", "review-new", "news-old"]


def test_one_claim_orders_scheduled_retrying_and_taken_over_mail_together(box: Outbox) -> None:
    """Each status is read on its own (see ``lease_due``): the merge keeps the one order."""
    box.add("expired", priority=2, due_in=-timedelta(hours=3))
    assert ids(box.claim(A, only=["expired"])) == ["expired"]
    box.add("retry", priority=1)
    (retry,) = box.claim(A, only=["retry"])
    box.mark("retrying", A, retry, retry_at=box.clock.now() + timedelta(minutes=1))
    box.add("order-later", priority=0, due_in=timedelta(hours=1))
    box.add("order-now", priority=0, due_in=-timedelta(minutes=1))
    box.add("news", priority=2, due_in=-timedelta(hours=4))
    box.add("review", priority=1, due_in=-timedelta(minutes=10))
    box.clock.advance(LEASE + TICK)  # the retry is due, A's lease of "expired" is over
    assert ids(box.claim(B, limit=4)) == ["order-now", "review", "retry", "news"]
    assert ids(box.claim(B, limit=4)) == ["expired"]


def test_claim_leaves_mail_that_is_not_yet_due(box: Outbox) -> None:
    box.add("due-now")
    box.add("due-later", due_in=TICK)
    assert ids(box.claim(A)) == ["due-now"]
    box.clock.advance(TICK)
    assert ids(box.claim(A)) == ["due-later"]


def test_claim_takes_at_most_limit_and_leaves_the_rest_queued(box: Outbox) -> None:
    box.add(*(f"m{n}" for n in range(5)))
    assert len(box.claim(A, limit=3)) == 3
    assert len(box.claim(B, limit=3)) == 2
    assert box.claim(C, limit=3) == []


def test_claim_only_takes_the_given_ids_and_only_when_due(box: Outbox) -> None:
    box.add("m1", "m2")
    box.add("m3", due_in=timedelta(hours=1))
    assert ids(box.claim(A, only=["m2", "m3"])) == ["m2"]
    assert ids(box.claim(A)) == ["m1"]


def test_a_claim_leases_opens_the_context_and_numbers_the_attempt(box: Outbox) -> None:
    box.add("m1")
    (claimed,) = box.claim(A)
    assert claimed.context == {"order": {"number": "m1"}}
    assert (claimed.attempts, claimed.attempt) == (0, 1)
    assert claimed.first_attempt_at == claimed.created_at == START
    row = box.row("m1")
    assert (row.status, row.lease_owner) == (MessageStatus.SENDING, A)
    assert row.lease_expires_at == START + LEASE
    assert box.log("m1") == []


def test_leased_messages_read_after_the_lease_keep_its_order_and_skip_what_is_gone(
    box: Outbox,
) -> None:
    """The lease commits before the messages are read, so an erasure may rename one between."""
    box.add("m1", "m2", "m3")
    with box.database.transaction() as session:
        leased = outbox.lease_due(session, owner=A, now=box.clock.now(), limit=10, lease=LEASE)
    assert leased == ["m1", "m2", "m3"]
    with box.database.transaction() as session:
        session.execute(delete(Message).where(Message.id == "m2"))
    with box.database.reading() as session:
        assert ids(outbox.claimed(session, box.sealer, leased)) == ["m1", "m3"]


# -- leases --------------------------------------------------------------------------------


def test_a_live_lease_is_not_claimed_again_up_to_its_last_instant(box: Outbox) -> None:
    box.add("m1")
    box.claim(A)
    box.clock.advance(LEASE)
    assert box.claim(A) == [] and box.claim(B) == []


def test_concurrent_claimers_never_get_the_same_row(box: Outbox) -> None:
    """Four workers race to empty the queue: every message is claimed exactly once.

    On PostgreSQL the claims run at once and skip each other's locked rows; on
    SQLite ``BEGIN IMMEDIATE`` makes them take turns, which is the same contract.
    """
    box.add(*(f"m{n:02}" for n in range(60)))
    start = threading.Barrier(4)

    def drain(owner: str) -> list[str]:
        start.wait()
        mine: list[str] = []
        while batch := box.claim(owner, limit=4):
            mine.extend(ids(batch))
        return mine

    with ThreadPoolExecutor(4) as pool:
        shares = list(pool.map(drain, ["w1", "w2", "w3", "w4"]))
    claimed = [message_id for share in shares for message_id in share]
    assert sorted(claimed) == [f"m{n:02}" for n in range(60)]


def test_a_claim_skips_rows_another_open_claim_holds(box: Outbox) -> None:
    """Skip-locked: the second claimer gets the next rows at once instead of waiting."""
    if box.database.is_sqlite:
        pytest.skip("SQLite serialises writers; the racing test covers its claim")
    box.add("m1", "m2", "m3")
    with box.database.transaction() as first:
        held = box.claim(A, limit=2, within=first)
        with box.database.transaction() as second:
            second.execute(sqlalchemy.text("SET LOCAL lock_timeout = '5s'"))
            assert ids(box.claim(B, within=second)) == ["m3"]
    assert ids(held) == ["m1", "m2"]


def test_an_expired_lease_is_taken_over_and_the_possible_duplicate_recorded(box: Outbox) -> None:
    _, second = box.taken_over()
    assert (second.attempts, second.attempt) == (1, 2)
    assert second.first_attempt_at == START
    row = box.row("m1")
    assert (row.status, row.lease_owner, row.attempts) == (MessageStatus.SENDING, B, 1)
    assert box.log("m1") == [(1, "lease_expired", B)]
    with box.database.transaction() as session:
        detail = session.scalars(select(DeliveryAttempt.detail)).one()
    assert detail is not None and A in detail and "may be delivered" in detail


@pytest.mark.parametrize("status", MARKS)
def test_an_outcome_from_an_owner_that_lost_its_lease_is_logged_but_ignored(
    box: Outbox, status: str
) -> None:
    first, second = box.taken_over()
    box.mark(status, A, first, detail="late")
    row = box.row("m1")
    assert (row.status, row.lease_owner, row.attempts) == (MessageStatus.SENDING, B, 1)
    assert box.log("m1")[-1][2] == A
    box.mark("sent", B, second)
    assert (box.row("m1").status, box.row("m1").attempts) == (MessageStatus.SENT, 2)
    box.mark("failed", A, first, detail="later still")
    assert box.row("m1").status is MessageStatus.SENT


def test_a_late_outcome_counts_while_nobody_has_taken_the_lease_over(box: Outbox) -> None:
    box.add("m1")
    (claimed,) = box.claim(A)
    box.clock.advance(LEASE * 2)
    box.mark("sent", A, claimed)
    assert box.row("m1").status is MessageStatus.SENT
    assert box.claim(B) == []


def test_release_returns_rows_to_the_queue_untried(box: Outbox) -> None:
    box.add("m1", "m2")
    box.claim(A)
    box.release(A, "m1", "m2")
    row = box.row("m1")
    assert (row.status, row.lease_owner, row.attempts) == (MessageStatus.SCHEDULED, None, 0)
    assert (row.lease_expires_at, box.log("m1")) == (None, [])
    assert [(m.id, m.attempts) for m in box.claim(B)] == [("m1", 0), ("m2", 0)]


def test_release_by_another_owner_changes_nothing(box: Outbox) -> None:
    box.add("m1")
    box.claim(A)
    box.release(B, "m1")
    assert (box.row("m1").status, box.row("m1").lease_owner) == (MessageStatus.SENDING, A)


def test_a_released_message_first_tried_later_counts_its_age_from_that_try(box: Outbox) -> None:
    box.add("m1")
    box.claim(A)
    box.release(A, "m1")
    box.clock.advance(timedelta(days=4))
    (claimed,) = box.claim(B)
    assert claimed.first_attempt_at == box.clock.now()


def test_a_released_retry_keeps_the_time_of_its_first_attempt(box: Outbox) -> None:
    box.add("m1")
    (claimed,) = box.claim(A)
    box.mark("retrying", A, claimed, retry_at=box.clock.now())
    box.clock.advance(timedelta(minutes=1))
    box.claim(A)
    box.release(A, "m1")
    box.clock.advance(timedelta(hours=1))
    (again,) = box.claim(B)
    assert again.first_attempt_at == START


# -- heartbeats ----------------------------------------------------------------------------


def test_a_silent_worker_is_taken_over_before_its_lease_ends_and_on_record(box: Outbox) -> None:
    box.add("m1", "m2")
    box.claim_alive(A)
    box.clock.advance(HEARTBEAT + TICK)
    taken = box.claim_alive(B)
    assert ids(taken) == ["m1", "m2"] and all(m.attempt == 2 for m in taken)
    assert box.row("m1").lease_owner == B
    assert box.log("m1") == [(1, "lease_expired", B)]
    with box.database.transaction() as session:
        detail = session.scalars(select(DeliveryAttempt.detail).limit(1)).one()
    assert detail is not None and A in detail and "stopped beating" in detail


def test_a_worker_that_beats_keeps_what_it_holds_up_to_the_timeout(box: Outbox) -> None:
    box.add("m1")
    box.claim_alive(A)
    box.clock.advance(HEARTBEAT)
    assert box.claim_alive(B) == []
    box.beat(A)
    box.clock.advance(HEARTBEAT)
    assert box.claim_alive(B) == []
    assert box.row("m1").lease_owner == A


def test_a_worker_never_takes_its_own_messages_over_for_a_stale_heartbeat(box: Outbox) -> None:
    """Its own rows are its batches under way, however long since it last beat."""
    box.add("m1")
    box.claim_alive(A)
    box.clock.advance(HEARTBEAT * 3)
    assert box.claim(A, dead_before=box.clock.now() - HEARTBEAT) == []


def test_a_worker_without_a_heartbeat_row_loses_its_messages_only_to_the_lease(
    box: Outbox,
) -> None:
    """A worker that stopped cleanly (row deleted) or never beat: the lease is the last resort."""
    box.add("m1")
    box.claim_alive(A)
    box.leave(A)
    box.clock.advance(LEASE)
    assert box.claim_alive(B) == []
    box.clock.advance(TICK)
    assert ids(box.claim_alive(B)) == ["m1"]
    assert box.log("m1") == [(1, "lease_expired", B)]


def test_an_outcome_after_a_heartbeat_takeover_is_logged_but_ignored(box: Outbox) -> None:
    box.add("m1")
    (first,) = box.claim_alive(A)
    box.clock.advance(HEARTBEAT + TICK)
    (second,) = box.claim_alive(B)
    box.mark("sent", A, first)
    assert (box.row("m1").status, box.row("m1").lease_owner) == (MessageStatus.SENDING, B)
    assert box.renew(A, "m1") == set()
    box.mark("sent", B, second)
    assert box.row("m1").status is MessageStatus.SENT
    assert box.log("m1") == [(1, "lease_expired", B), (1, "sent", A), (2, "sent", B)]


def test_workers_alive_and_forgotten(box: Outbox) -> None:
    box.beat(A)
    box.clock.advance(timedelta(days=2))
    box.beat(B)
    with box.database.transaction() as session:
        assert workers.alive(session, box.clock.now() - HEARTBEAT) == [B]
        assert workers.forget(session, box.clock.now() - timedelta(days=1)) == 1
        assert workers.alive(session, START) == [B]


def test_renew_extends_only_the_owners_own_sending_leases(box: Outbox) -> None:
    box.add("a1", "a2", "a-done", priority=0)
    box.add("b1", priority=1)
    *_, done = box.claim(A, limit=3)
    box.claim(B)
    box.mark("sent", A, done)
    box.clock.advance(LEASE - timedelta(minutes=1))
    assert box.renew(A, "a1", "a2", "a-done", "b1") == {"a1", "a2"}
    assert box.row("a1").lease_expires_at == box.clock.now() + LEASE
    box.clock.advance(timedelta(minutes=1) + TICK)
    assert ids(box.claim(C)) == ["b1"]
    assert box.row("a-done").status is MessageStatus.SENT


def test_renew_after_a_takeover_is_refused(box: Outbox) -> None:
    box.taken_over()
    expires = box.row("m1").lease_expires_at
    assert box.renew(A, "m1") == set()
    assert (box.row("m1").lease_owner, box.row("m1").lease_expires_at) == (B, expires)


# -- outcomes ------------------------------------------------------------------------------

OUTCOMES = [  # the status, the column its detail goes to, the attempt it logs
    ("sent", None, "sent"),
    ("retrying", "last_error", "transient"),
    ("failed", "last_error", "failed"),
    ("suppressed", "reason", "suppressed"),
]


def test_each_attempt_row_and_the_message_carry_the_moment_of_that_attempt(box: Outbox) -> None:
    """Outcomes committed together keep their own times, not the commit's."""
    box.add("m1", "m2")
    first, second = box.claim(A)
    ended = [box.clock.now() + timedelta(seconds=1), box.clock.now() + timedelta(seconds=2)]
    box.clock.advance(timedelta(seconds=5))
    with box.database.transaction() as session:
        outbox.record(
            session,
            A,
            {
                MessageStatus.SENT: [outbox.Outcome(first.id, 1, at=ended[0])],
                MessageStatus.RETRYING: [
                    outbox.Outcome(second.id, 1, retry_at=box.clock.now(), at=ended[1])
                ],
            },
            box.clock.now(),
        )
        times = dict(session.execute(select(DeliveryAttempt.message_id, DeliveryAttempt.at)).all())
    assert times == {"m1": ended[0], "m2": ended[1]}
    assert box.row("m1").sent_at == ended[0]
    assert box.row("m2").updated_at == ended[1]


def test_record_refuses_a_status_no_attempt_ends_in(box: Outbox) -> None:
    box.add("m1")
    (claimed,) = box.claim(A)
    with box.database.transaction() as session, pytest.raises(ValueError, match="scheduled"):
        outcome = outbox.Outcome(claimed.id, claimed.attempt)
        outbox.record(session, A, {MessageStatus.SCHEDULED: [outcome]}, box.clock.now())


@pytest.mark.parametrize(("status", "column", "logged"), OUTCOMES)
def test_each_outcome_writes_its_fields_one_attempt_and_only_a_retry_comes_back(
    box: Outbox, status: str, column: str | None, logged: str
) -> None:
    box.add("m1")
    (claimed,) = box.claim(A)
    box.mark(status, A, claimed, detail="why", smtp_code=250, message_id="<id>", locale="nl")
    row = box.row("m1")
    assert (row.status.value, row.attempts, row.lease_owner) == (status, 1, None)
    if column is not None:
        assert getattr(row, column) == "why"
    sent = status == "sent"
    assert (row.sent_at, row.message_id) == ((box.clock.now(), "<id>") if sent else (None, None))
    assert box.log("m1") == [(1, logged, A)]
    box.clock.advance(timedelta(days=30))
    assert ids(box.claim(B)) == (["m1"] if status == "retrying" else [])


def test_a_retry_is_claimed_again_at_retry_at_and_not_before(box: Outbox) -> None:
    box.add("m1")
    (claimed,) = box.claim(A)
    retry_at = box.clock.now() + timedelta(minutes=2)
    box.mark("retrying", A, claimed, retry_at=retry_at)
    assert box.row("m1").send_after == retry_at
    box.clock.set(retry_at - TICK)
    assert box.claim(B) == []
    box.clock.set(retry_at)
    (again,) = box.claim(B)
    assert (again.attempt, again.first_attempt_at) == (2, claimed.first_attempt_at)


# -- cancellation --------------------------------------------------------------------------


def put_in(box: Outbox, status: str) -> None:
    """Bring message m1 into ``status`` by the outbox's own transitions."""
    box.add("m1")
    if status == "cancelled":
        box.cancel("m1")
    elif status != "scheduled":
        (claimed,) = box.claim(A)
        if status != "sending":
            box.mark(status, A, claimed)


@pytest.mark.parametrize("status", ["scheduled", "retrying"])
def test_cancel_stops_mail_that_waits(box: Outbox, status: str) -> None:
    put_in(box, status)
    assert box.cancel("m1").status is MessageStatus.CANCELLED
    assert box.row("m1").reason == "cancelled by request"
    box.clock.advance(timedelta(days=1))
    assert box.claim(B) == []


@pytest.mark.parametrize("status", ["sending", "sent", "failed", "suppressed", "cancelled"])
def test_cancel_refuses_mail_being_sent_or_finished(box: Outbox, status: str) -> None:
    put_in(box, status)
    with pytest.raises(errors.Conflict, match=f"message is {status}"):
        box.cancel("m1")
    assert box.row("m1").status.value == status


def test_cancel_of_an_unknown_message_is_not_found(box: Outbox) -> None:
    with pytest.raises(errors.NotFound):
        box.cancel("nope")


# -- as the API reports it -----------------------------------------------------------------


async def test_the_api_reports_each_status_and_attempt_count(box: Outbox, engine: Notifier) -> None:
    """``MessageOut`` follows the row: status, attempts, last error, sent time."""

    def shown() -> tuple[str, int, str | None, datetime | None]:
        out = engine.get_message("m1")
        return (out.status, out.attempts, out.last_error, out.sent_at)

    box.add("m1")
    assert shown() == ("scheduled", 0, None, None)
    (first,) = box.claim(A)
    assert shown() == ("sending", 0, None, None)
    box.mark("retrying", A, first, detail="451 try later")
    assert shown() == ("retrying", 1, "451 try later", None)
    box.clock.advance(timedelta(minutes=1))
    box.claim(A)
    box.clock.advance(LEASE + TICK)
    (third,) = box.claim(B)
    assert shown() == ("sending", 2, "451 try later", None)
    box.mark("sent", B, third)
    assert shown() == ("sent", 3, None, box.clock.now())
    assert box.log("m1") == [(1, "transient", A), (2, "lease_expired", B), (3, "sent", B)]
