"""Group commit of events (``store.group_commit``): concurrent callers share one transaction.

Batches are made deterministic without mocks: another connection holds the database's
write lock, so the writer waits inside its first batch (the "plug") while the callers
under test pile up; letting go commits them together as the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy

from notifier import errors
from notifier.flows import kinds
from notifier.schemas import EventIn
from notifier.service import Accepted, Notifier
from notifier.store import events, models, outbox, reviews
from notifier.store.db import Session
from notifier.store.group_commit import GroupCommit
from notifier.web.app import create_app
from tests.batches import Caller, one_batch, write_lock
from tests.conftest import START, customer, event, order, record_event
from tests.faults import TcpProxy, via_proxy
from tests.processes import wait_until

TOKEN = "test-token"
PAIR = models.REVIEW_PAIR_KIND


def count_commits(engine: Notifier) -> list[int]:
    commits = [0]

    def counted(_connection: Any) -> None:
        commits[0] += 1

    sqlalchemy.event.listen(engine.database.engine, "commit", counted)
    return commits


def placed(number: int) -> dict[str, Any]:
    return event("order.placed", id=f"evt-{number}", customer=customer(id=f"C{number}"))


def test_concurrent_events_are_committed_in_one_transaction(
    engine: Notifier, database_url: str
) -> None:
    commits = count_commits(engine)
    callers = one_batch(engine, database_url, [placed(number) for number in range(16)])
    assert commits[0] == 2  # the plug's batch, then all sixteen together
    for number, caller in enumerate(callers):
        assert caller.error is None and caller.answer is not None and caller.answer.created
        [message] = engine.customer_messages(f"C{number}")
        assert message.kind == "order_confirmation"
        assert caller.answer.body["messages"][0]["id"] == message.id


def test_a_poisoned_event_fails_alone_and_the_rest_commit(
    engine: Notifier, database_url: str
) -> None:
    poisoned = event("order.placed", id="evt-poison", customer=customer(id="CX"))
    del poisoned["order"]  # passes the schema, refused by the business rules
    good, bad, other = one_batch(engine, database_url, [placed(1), poisoned, placed(2)])
    assert isinstance(bad.error, errors.InvalidInput) and bad.error.field == "order"
    assert good.answer is not None and good.answer.created
    assert other.answer is not None and other.answer.created
    assert len(engine.customer_messages("C1")) == len(engine.customer_messages("C2")) == 1
    assert engine.customer_messages("CX") == []
    # The refused id was not recorded: once corrected it is a new event.
    assert engine.handle_event(event("order.placed", id="evt-poison")).created


def test_duplicates_inside_one_batch_get_the_first_answer(
    engine: Notifier, database_url: str
) -> None:
    bodies = [event("order.placed", id="evt-twice") for _ in range(4)] + [placed(7)]
    callers = one_batch(engine, database_url, bodies)
    answers = [caller.answer for caller in callers[:4]]
    assert all(caller.error is None for caller in callers)
    assert [answer.created for answer in answers if answer] == [True, False, False, False]
    assert len({str(answer.body) for answer in answers if answer}) == 1
    assert len(engine.customer_messages("C42")) == 1
    assert callers[4].answer is not None and callers[4].answer.created


def test_a_group_asks_for_earlier_answers_once_and_repeats_get_the_first(
    engine: Notifier, database_url: str
) -> None:
    first = engine.handle_event(event("order.placed", id="evt-seen"))
    selects: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("SELECT") and "FROM events" in statement:
            selects.append(statement)

    sqlalchemy.event.listen(engine.database.engine, "before_cursor_execute", record)
    bodies = [event("order.placed", id="evt-seen"), placed(1), event("order.placed", id="evt-seen")]
    seen, new, again = one_batch(engine, database_url, bodies)
    assert len(selects) == 2  # the plug's batch, then this one's
    for repeat in (seen, again):
        assert repeat.answer == Accepted(first.body, created=False)
    assert new.answer is not None and new.answer.created
    assert len(engine.customer_messages("C42")) == 1


def test_the_id_of_an_event_refused_in_the_group_is_new_to_its_repeat(
    engine: Notifier, database_url: str
) -> None:
    refused = event("order.placed", id="evt-fixed", customer=customer(id="CX"))
    del refused["order"]
    fixed = event("order.placed", id="evt-fixed", customer=customer(id="CX"))
    bad, good, repeat, other = one_batch(engine, database_url, [refused, fixed, fixed, placed(2)])
    assert isinstance(bad.error, errors.InvalidInput)
    assert good.answer is not None and good.answer.created
    assert repeat.answer == Accepted(good.answer.body, created=False)
    assert other.answer is not None and other.answer.created
    assert len(engine.customer_messages("CX")) == 1


def test_a_group_writes_each_table_once(engine: Notifier, database_url: str) -> None:
    inserts: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT"):
            inserts.append(statement.split()[2])

    sqlalchemy.event.listen(engine.database.engine, "before_cursor_execute", record)
    callers = one_batch(engine, database_url, [placed(number) for number in range(8)])
    assert all(caller.answer is not None and caller.answer.created for caller in callers)
    # The plug's group, then this one's: one (executemany) INSERT per table.
    assert inserts == ["events", "customers", "orders", "messages"] * 2
    for number in range(8):
        [message] = engine.customer_messages(f"C{number}")
        assert message.created_at == START


def test_review_rules_see_the_earlier_events_of_the_group(
    engine: Notifier, database_url: str
) -> None:
    bodies = [
        event("order.delivered", at=START, order=order(id="O-1")),
        event("order.delivered", at=START + timedelta(days=30), order=order(id="O-2")),  # capped
        event("order.delivered", at=START, order=order(id="O-1")),  # the same order again
        event("order.delivered", at=START, order=order(id="O-3"), customer=customer(id="C9")),
    ]
    callers = one_batch(engine, database_url, bodies)
    queued = [len(caller.answer.body["messages"]) for caller in callers if caller.answer]
    assert queued == [2, 0, 0, 2]
    assert {m.order_id for m in engine.customer_messages("C42")} == {"O-1"}
    assert len(engine.customer_messages("C9")) == 2


def test_review_rules_see_the_pairs_before_the_group_and_its_cancellations(
    engine: Notifier, database_url: str
) -> None:
    c9 = customer(id="C9")
    engine.handle_event(event("order.delivered", at=START, order=order(id="O-1")))
    engine.handle_event(event("order.delivered", at=START, order=order(id="O-5"), customer=c9))
    bodies = [
        event("order.delivered", at=START + timedelta(days=30), order=order(id="O-2")),  # capped
        event("order.cancelled", order=order(id="O-1")),  # the pair that capped it goes
        event("order.delivered", at=START + timedelta(days=31), order=order(id="O-3")),
        event("order.delivered", at=START + timedelta(days=32), order=order(id="O-4")),  # capped
        event("order.delivered", at=START + timedelta(days=95), order=order(id="O-5"), customer=c9),
        event("order.delivered", at=START + timedelta(days=95), order=order(id="O-6"), customer=c9),
    ]
    callers = one_batch(engine, database_url, bodies)
    queued = [len(caller.answer.body["messages"]) for caller in callers if caller.answer]
    assert queued == [0, 0, 2, 0, 0, 2]
    pairs = [(m.order_id, m.status) for m in engine.customer_messages("C42") if m.kind == PAIR]
    assert sorted(pairs) == [("O-1", "cancelled"), ("O-3", "scheduled")]
    assert {m.order_id for m in engine.customer_messages("C9")} == {"O-5", "O-6"}


def test_a_group_looks_up_review_pairs_in_two_queries(engine: Notifier, database_url: str) -> None:
    reads: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("SELECT") and "FROM messages" in statement:
            reads.append(statement)

    sqlalchemy.event.listen(engine.database.engine, "before_cursor_execute", record)
    bodies = [
        event("order.delivered", order=order(id=f"O-{n}"), customer=customer(id=f"C{n % 3}"))
        for n in range(6)
    ]
    callers = one_batch(engine, database_url, bodies)
    queued = [len(caller.answer.body["messages"]) for caller in callers if caller.answer]
    assert queued == [2, 2, 2, 0, 0, 0]  # each customer's second pair is capped
    assert len(reads) == 2  # this group's: the plug's order.placed needs none


def test_a_cancellation_sees_the_mail_queued_earlier_in_the_group(
    engine: Notifier, database_url: str
) -> None:
    bodies = [event("order.placed", order=order(id="O-7")), event("order.cancelled")]
    bodies[1]["order"] = order(id="O-7")
    placing, cancelling = one_batch(engine, database_url, bodies)
    assert placing.answer is not None and cancelling.answer is not None
    [confirmation] = engine.customer_messages("C42")
    assert (confirmation.kind, confirmation.status) == ("order_confirmation", "cancelled")


def test_close_commits_what_callers_wait_for_and_refuses_the_rest(
    engine: Notifier, database_url: str, make_engine: Callable[..., Notifier]
) -> None:
    with write_lock(database_url):
        plug = Caller(engine, placed(100))
        wait_until(lambda: engine.intake.backlog == 1 and engine.intake.pending == 0, 10, "plug")
        waiting = [Caller(engine, placed(number)) for number in range(5)]
        wait_until(lambda: engine.intake.pending == 5, 10, "callers queued")
        closing = threading.Thread(target=engine.close)
        closing.start()
    closing.join(timeout=60)
    assert not closing.is_alive()
    for caller in [plug.join(), *[caller.join() for caller in waiting]]:
        assert caller.error is None and caller.answer is not None and caller.answer.created
    assert not [thread for thread in threading.enumerate() if thread.name == "notifier-intake"]
    with pytest.raises(errors.ServiceUnavailable):
        engine.handle_event(placed(200))
    reopened = make_engine()
    assert all(len(reopened.customer_messages(f"C{number}")) == 1 for number in range(5))


def needs_postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: SQLite has one writer and no server to lose")


def test_an_outage_fails_every_caller_of_the_batch(
    database_url: str, make_engine: Callable[..., Notifier]
) -> None:
    needs_postgres(database_url)
    target = sqlalchemy.make_url(database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    try:
        engine = make_engine(database_url=via_proxy(database_url, proxy.port))
        assert engine.handle_event(placed(1)).created
        with write_lock(database_url):
            plug = Caller(engine, placed(2))
            wait_until(lambda: engine.intake.pending == 0 and engine.intake.backlog == 1, 10, "p")
            callers = [Caller(engine, placed(number)) for number in range(3, 6)]
            wait_until(lambda: engine.intake.pending == 3, 10, "callers queued")
            proxy.cut()
        for caller in [plug.join(), *[caller.join() for caller in callers]]:
            assert isinstance(caller.error, errors.ServiceUnavailable), caller.error
        proxy.restore()
        assert engine.handle_event(placed(3)).created  # refused before, so new now
        counts = [len(engine.customer_messages(f"C{number}")) for number in range(1, 6)]
        assert counts == [1, 0, 1, 0, 0]
    finally:
        proxy.close()


async def test_a_race_with_another_process_answers_with_its_event(
    engine: Notifier, database_url: str
) -> None:
    """Another process inserts the same event id first; only that caller's savepoint fails."""
    needs_postgres(database_url)
    other = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.NullPool)
    app = create_app(engine, [TOKEN], run_worker=False)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    theirs = {"event_id": "evt-shared", "messages": []}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
        ) as client:
            with other.connect() as connection, connection.begin() as transaction:
                with Session(bind=connection) as session:
                    events.record(
                        session,
                        event_id="evt-shared",
                        type="order.placed",
                        customer_id="C42",
                        order_id="O-1001",
                        occurred_at=START,
                        received_at=START,
                        response=theirs,
                    )
                posts = asyncio.gather(
                    client.post("/v1/events", json=placed(1)),
                    client.post("/v1/events", json=event("order.placed", id="evt-shared")),
                    client.post("/v1/events", json=placed(2)),
                )
                blocked = "SELECT count(*) FROM pg_locks WHERE NOT granted"
                await asyncio.to_thread(
                    wait_until,
                    lambda: _scalar(other, blocked) > 0,
                    10,
                    "the writer waiting on the other insert",
                )
                transaction.commit()
            first, shared, second = await posts
        assert (first.status_code, shared.status_code, second.status_code) == (202, 200, 202)
        assert shared.json() == theirs
        assert len(engine.customer_messages("C1")) == len(engine.customer_messages("C2")) == 1
        assert engine.customer_messages("C42") == []
    finally:
        other.dispose()


def test_a_redone_group_drops_the_pairs_of_its_undone_attempt(
    engine: Notifier, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process records an event's id while the group writes: the group is redone.

    The first attempt queued the order's pair for that event; in the redo the
    event is a repeat, and the next event of the same order queues the pair.
    """
    needs_postgres(database_url)
    caplog.set_level(logging.INFO, logger="notifier.store.group_commit")
    other = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.NullPool)
    theirs = {"event_id": "evt-raced", "messages": []}
    waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
    try:
        with other.connect() as connection:
            transaction = connection.begin()
            with Session(bind=connection) as session:
                record_event(session, "evt-raced", theirs)

            def commit_when_the_writer_waits() -> None:
                wait_until(lambda: _scalar(other, waiting) > 0, 30, "the writer waiting")
                transaction.commit()

            committer = threading.Thread(target=commit_when_the_writer_waits)
            committer.start()
            bodies = [event("order.delivered", id="evt-raced"), event("order.delivered")]
            raced, later = one_batch(engine, database_url, bodies, locked="customers")
            committer.join(timeout=60)
        assert "intake.batch_redone batch=2 error=Duplicate" in caplog.text
        assert raced.answer == Accepted(theirs, created=False)
        assert later.answer is not None and len(later.answer.body["messages"]) == 2
        assert {m.order_id for m in engine.customer_messages("C42")} == {"O-1001"}
    finally:
        other.dispose()


def _scalar(engine: sqlalchemy.Engine, query: str) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(query).scalar_one())


# -- GroupCommit itself, with a real database and an item that writes before it fails -------


class Gate:
    """Holds the writer inside its first item until opened, so later items share a batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.opened.wait(timeout=30)


def record(session: Session, event_id: str, gate: Gate) -> str:
    if event_id == "plug":
        gate.hold()
    record_event(session, event_id, {"id": event_id})
    if event_id.startswith("poison"):
        raise RuntimeError(f"{event_id} breaks after writing")
    return event_id


def test_group_commit_rolls_back_only_the_failing_items_savepoint(
    engine: Notifier,
) -> None:
    gate = Gate()
    batches: list[list[str]] = []
    database = engine.database
    writer: GroupCommit[str, str] = GroupCommit(
        database,
        lambda session, item: record(session, item, gate),
        lambda results: batches.append(list(results)),
    )
    try:
        plug = writer.submit("plug")
        assert gate.entered.wait(timeout=30)
        ids = ["a", "poison-1", "b", "a", "poison-2", "c"]
        futures: list[Future[str]] = [writer.submit(item) for item in ids]
        gate.opened.set()
        assert plug.result(timeout=30) == "plug"
        outcomes = [_outcome(future) for future in futures]
    finally:
        writer.close()
    assert outcomes == ["a", "RuntimeError", "b", "Duplicate", "RuntimeError", "c"]
    assert batches == [["plug"], ["a", "b", "c"]]  # after_commit: once a batch, successes only
    with database.transaction() as session:
        stored = {item: events.answer(session, item) for item in [*ids, "plug"]}
    assert {item for item, answer in stored.items() if answer} == {"plug", "a", "b", "c"}


def record_or_break_a_constraint(session: Session, event_id: str, gate: Gate) -> str:
    """Items named ``null-…`` write a real row the database refuses: no ``type`` (NOT NULL).

    Items named ``bug-…`` send a statement it fails: a column that does not exist.
    """
    if event_id == "plug":
        gate.hold()
    if event_id.startswith("null-"):
        session.execute(sqlalchemy.text("INSERT INTO events (id) VALUES (:id)"), {"id": event_id})
    elif event_id.startswith("bug-"):
        session.execute(sqlalchemy.text("SELECT no_such_column FROM events"))
    else:
        record_event(session, event_id, {"id": event_id})
    return event_id


def run_batch(writer: GroupCommit[str, str], gate: Gate, items: list[str]) -> list[str]:
    """``items`` submitted while the writer holds the plug, so that they form one batch."""
    plug = writer.submit("plug")
    assert gate.entered.wait(timeout=30)
    futures = [writer.submit(item) for item in items]
    gate.opened.set()
    assert plug.result(timeout=30) == "plug"
    return [_outcome(future) for future in futures]


def stored_answers(engine: Notifier, ids: Sequence[str]) -> set[str]:
    with engine.database.transaction() as session:
        return {item for item in ids if events.answer(session, item)}


def test_group_commit_answers_a_value_the_database_refuses_alone_and_commits_the_rest(
    engine: Notifier,
) -> None:
    gate = Gate()
    batches: list[list[str]] = []
    writer: GroupCommit[str, str] = GroupCommit(
        engine.database,
        lambda session, item: record_or_break_a_constraint(session, item, gate),
        lambda results: batches.append(list(results)),
    )
    ids = ["a", "null-1", "b", "null-2", "c"]
    try:
        outcomes = run_batch(writer, gate, ids)
        assert writer.submit("after").result(timeout=30) == "after"  # the writer lives on
    finally:
        writer.close()
    assert outcomes == ["a", "Unstorable", "b", "Unstorable", "c"]
    assert batches == [["plug"], ["a", "b", "c"], ["after"]]
    assert stored_answers(engine, ids) == {"a", "b", "c"}


def test_group_commit_answers_a_statement_the_database_fails_alone(
    engine: Notifier, database_url: str
) -> None:
    """A bug's database error is a ``StorageError`` (500) for its item; the rest commit."""
    needs_postgres(database_url)  # SQLite calls it an OperationalError: an outage, for the batch
    gate = Gate()
    writer: GroupCommit[str, str] = GroupCommit(
        engine.database,
        lambda session, item: record_or_break_a_constraint(session, item, gate),
        lambda results: None,
    )
    try:
        outcomes = run_batch(writer, gate, ["a", "bug-1", "b"])
    finally:
        writer.close()
    assert outcomes == ["a", "StorageError", "b"]
    assert stored_answers(engine, ["a", "bug-1", "b"]) == {"a", "b"}


UNSTORABLE = [
    pytest.param("\ud800", id="surrogate"),  # no driver can encode it as UTF-8
    pytest.param("\x00", id="nul"),  # PostgreSQL refuses it; SQLite stores it
]


def needs_unstorable(database_url: str, text: str) -> str:
    if text == "\x00" and not database_url.startswith("postgresql"):
        pytest.skip("SQLite stores a NUL")
    return text


def look_up_answers(session: Session, items: Sequence[str]) -> None:
    """A ``prepare`` that reads for the whole batch, as intake's does."""
    events.answers(session, items)


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_group_commit_answers_an_item_its_lookup_fails_for_alone(
    engine: Notifier, database_url: str, bad: str
) -> None:
    """``prepare`` reads for the whole batch; an id the database refuses fails only its item."""
    text = needs_unstorable(database_url, bad)
    gate = Gate()
    batches: list[list[str]] = []
    writer: GroupCommit[str, str] = GroupCommit(
        engine.database,
        lambda session, item: record(session, item, gate),
        lambda results: batches.append(list(results)),
        prepare=look_up_answers,
    )
    ids = ["a", f"bad{text}", "b", "c"]
    try:
        outcomes = run_batch(writer, gate, ids)
    finally:
        writer.close()
    assert outcomes == ["a", "Unstorable", "b", "c"]
    assert batches == [["plug"], ["a", "b", "c"]]
    assert stored_answers(engine, ["a", "b", "c"]) == {"a", "b", "c"}


@pytest.mark.parametrize("bad", UNSTORABLE)
@pytest.mark.parametrize("where", ["id", "customer.id"])
def test_an_event_the_database_refuses_fails_alone_past_the_input_checks(
    engine: Notifier, database_url: str, bad: str, where: str
) -> None:
    """Defence in depth: an event built without validation, in a batch with honest ones."""
    text = needs_unstorable(database_url, bad)
    valid = EventIn.model_validate(event("order.delivered", id="evt-bad"))
    if where == "id":
        poisoned = valid.model_copy(update={"id": f"evt{text}"})
    else:
        bad_customer = valid.customer.model_copy(update={"id": f"C{text}"})
        poisoned = valid.model_copy(update={"customer": bad_customer})
    good, bad_caller, other = one_batch(engine, database_url, [placed(1), poisoned, placed(2)])
    assert isinstance(bad_caller.error, errors.Unstorable), bad_caller.error
    assert good.answer is not None and good.answer.created
    assert other.answer is not None and other.answer.created
    assert len(engine.customer_messages("C1")) == len(engine.customer_messages("C2")) == 1
    assert engine.customer_messages("C42") == []


def test_group_commit_after_close_refuses_work(engine: Notifier) -> None:
    writer: GroupCommit[str, str] = GroupCommit(
        engine.database, lambda session, item: item, lambda results: None
    )
    assert writer.submit("x").result(timeout=30) == "x"
    writer.close()
    writer.close()
    with pytest.raises(errors.ServiceUnavailable):
        writer.submit("y")


def _outcome(future: Future[str]) -> str:
    error = future.exception(timeout=30)
    return type(error).__name__ if error else future.result()


def test_answers_are_stamped_with_the_callers_clock(engine: Notifier) -> None:
    accepted = engine.handle_event(placed(9))
    assert datetime.fromisoformat(accepted.body["messages"][0]["created_at"]) == START


def test_review_decisions_for_one_customer_take_turns_across_processes(
    engine: Notifier, database_url: str
) -> None:
    """Another process is deciding C42's pair: this one waits for it, then sees the cap."""
    needs_postgres(database_url)
    engine.handle_event(event("order.placed", order=order(id="O-1")))  # C42 exists
    review = kinds.get(PAIR)
    theirs = outbox.NewMessage(
        id="msg-theirs",
        customer_id="C42",
        kind=PAIR,
        category=review.category,
        priority=review.priority,
        send_after=START + timedelta(days=3),
        context={},
        created_at=START,
        order_id="O-1",
    )
    other = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.NullPool)
    blocked = "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'"
    try:
        with other.connect() as connection, connection.begin() as transaction:
            with Session(bind=connection) as session:
                reviews.lock_review_customers(session, ["C42"])
                outbox.add(session, engine.sealer, [theirs])
            caller = Caller(engine, event("order.delivered", at=START, order=order(id="O-2")))
            wait_until(lambda: _scalar(other, blocked) > 0, 10, "intake waiting for the other")
            transaction.commit()
        answer = caller.join().answer
    finally:
        other.dispose()
    assert answer is not None and answer.body["messages"] == []  # capped by theirs
    pairs = [m.order_id for m in engine.customer_messages("C42") if m.kind == PAIR]
    assert pairs == ["O-1"]
