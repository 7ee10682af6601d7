"""The store on intake's path: ``customers.upsert``, ``outbox.add``, the event answers and the
review history, on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import select

from notifier import errors
from notifier.crypto import Sealer
from notifier.recipient import Recipient
from notifier.store import customers, events, models, outbox, pending_rows, reviews
from notifier.store.db import Database
from notifier.store.models import Customer, Message, MessageStatus
from tests.conftest import START, TEST_ENCRYPTION_KEY, order, record_event

LATER = START + timedelta(hours=2)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer([TEST_ENCRYPTION_KEY], "test-secret-key")


def upsert(database: Database, sealer: Sealer, **changes: Any) -> None:
    values: dict[str, Any] = {
        "customer_id": "C42",
        "email": "jan@example.nl",
        "name": "Jan de Vries",
        "locale": "nl",
        "now": START,
    }
    with database.transaction() as session:
        customers.upsert(session, sealer, **values | changes)


def stored_customer(database: Database) -> Customer:
    with database.transaction() as session:
        row = session.scalars(select(Customer).where(Customer.id == "C42")).one()
        session.expunge(row)
        return row


def test_upsert_creates_the_customer_sealed(database: Database, sealer: Sealer) -> None:
    upsert(database, sealer)
    row = stored_customer(database)
    assert b"jan@example.nl" not in row.email
    assert sealer.open_text(row.email) == "jan@example.nl"
    assert row.name is not None and sealer.open_text(row.name) == "Jan de Vries"
    assert row.email_index == sealer.blind_index("jan@example.nl")
    assert (row.locale, row.created_at, row.updated_at) == ("nl", START, START)


def test_upsert_updates_details_and_keeps_created_at(database: Database, sealer: Sealer) -> None:
    upsert(database, sealer)
    upsert(database, sealer, email="Jan@Example.org", name=None, locale="en", now=LATER)
    row = stored_customer(database)
    assert sealer.open_text(row.email) == "Jan@Example.org"
    assert row.email_index == sealer.blind_index("jan@example.org")
    assert row.name is None
    assert (row.locale, row.created_at, row.updated_at) == ("en", START, LATER)
    with database.transaction() as session:
        assert customers.get(session, sealer, "C42") == Recipient(
            "C42", "Jan@Example.org", None, "en", sealer.blind_index("jan@example.org")
        )


def test_the_first_name_is_sealed_like_the_name(database: Database, sealer: Sealer) -> None:
    """Issue 22: the greeting's first name, optional, stored sealed and updated like the rest."""
    upsert(database, sealer, first_name="Jan")
    row = stored_customer(database)
    assert row.first_name is not None and b"Jan" not in row.first_name
    assert sealer.open_text(row.first_name) == "Jan"
    with database.transaction() as session:
        recipient = customers.get(session, sealer, "C42")
        assert recipient is not None and recipient.first_name == "Jan"
    upsert(database, sealer, first_name=None, now=LATER)
    assert stored_customer(database).first_name is None


def test_upsert_twice_in_one_transaction_keeps_the_last(database: Database, sealer: Sealer) -> None:
    with database.transaction() as session:
        for number in range(3):
            customers.upsert(
                session,
                sealer,
                customer_id="C42",
                email=f"jan{number}@example.nl",
                name=f"Jan {number}",
                locale="nl",
                now=START + timedelta(minutes=number),
            )
    row = stored_customer(database)
    assert sealer.open_text(row.email) == "jan2@example.nl"
    assert (row.created_at, row.updated_at) == (START, START + timedelta(minutes=2))


def test_upsert_all_in_one_statement_keeps_the_last_of_a_customer(
    database: Database, sealer: Sealer
) -> None:
    upsert(database, sealer)
    details = [
        customers.Details("C42", "jan1@example.nl", None, "en", LATER),
        customers.Details("C7", "piet@example.nl", "Piet", "nl", LATER),
        customers.Details("C42", "jan2@example.nl", "Jan 2", "de", LATER + timedelta(minutes=1)),
    ]
    with database.transaction() as session:
        customers.upsert_all(session, sealer, details)
        customers.upsert_all(session, sealer, [])
    row = stored_customer(database)
    assert sealer.open_text(row.email) == "jan2@example.nl"
    assert row.name is not None and sealer.open_text(row.name) == "Jan 2"
    assert (row.locale, row.created_at, row.updated_at) == (
        "de",
        START,
        LATER + timedelta(minutes=1),
    )
    with database.transaction() as session:
        assert customers.get(session, sealer, "C7") == Recipient(
            "C7", "piet@example.nl", "Piet", "nl", sealer.blind_index("piet@example.nl")
        )


def test_record_all_stores_events_and_fails_on_a_known_id(database: Database) -> None:
    records = [
        events.Record(f"evt-{n}", "order.placed", "C42", "O-1", START, LATER, {"n": n})
        for n in range(3)
    ]
    with database.transaction() as session:
        events.record_all(session, records[:2])
        events.record_all(session, [])
        with pytest.raises(errors.Duplicate), database.savepoint(session):
            events.record_all(session, records[2:] + records[:1])
    with database.transaction() as session:
        assert events.answers(session, ["evt-0", "evt-1", "evt-2"]) == {
            "evt-0": {"n": 0},
            "evt-1": {"n": 1},
        }


def new_message(message_id: str, **changes: Any) -> outbox.NewMessage:
    values: dict[str, Any] = {
        "id": message_id,
        "customer_id": "C42",
        "kind": "order_confirmation",
        "category": "order_updates",
        "send_after": LATER,
        "context": {"order": order(), "data": {}},
        "created_at": START,
        "event_id": "evt-1",
        "order_id": "O-1001",
        "priority": 0,
    }
    return outbox.NewMessage(**values | changes)


def test_add_queues_scheduled_messages_with_sealed_context(
    database: Database, sealer: Sealer
) -> None:
    batch = [new_message("m-1"), new_message("m-2", kind="shipping_update", priority=1)]
    with database.transaction() as session:
        outbox.add(session, sealer, batch)
    with database.transaction() as session:
        rows = {row.id: row for row in session.scalars(select(Message))}
        for new in batch:
            row = rows[new.id]
            assert row.context is not None and sealer.open_json(row.context) == new.context
            assert b"O-1001" not in row.context
            assert (row.customer_id, row.event_id, row.order_id, row.campaign_id) == (
                "C42",
                "evt-1",
                "O-1001",
                None,
            )
            assert (row.kind, row.category, row.priority) == (new.kind, new.category, new.priority)
            assert (row.status, row.attempts, row.send_after) == (
                MessageStatus.SCHEDULED,
                0,
                LATER,
            )
            assert (row.created_at, row.updated_at) == (START, START)
            assert (row.first_attempt_at, row.sent_at, row.lease_owner) == (None, None, None)


def test_add_keeps_each_message_its_own_time(database: Database, sealer: Sealer) -> None:
    with database.transaction() as session:
        outbox.add(session, sealer, [new_message("m-1"), new_message("m-2", created_at=LATER)])
    with database.transaction() as session:
        rows = {row.id: row for row in session.scalars(select(Message))}
    assert (rows["m-1"].created_at, rows["m-1"].updated_at) == (START, START)
    assert (rows["m-2"].created_at, rows["m-2"].updated_at) == (LATER, LATER)


def test_add_of_an_existing_id_fails_in_its_savepoint(database: Database, sealer: Sealer) -> None:
    with database.transaction() as session:
        outbox.add(session, sealer, [new_message("m-1")])
        outbox.add(session, sealer, [])
        with pytest.raises(errors.Duplicate), database.savepoint(session):
            outbox.add(session, sealer, [new_message("m-2"), new_message("m-1")])
        outbox.add(session, sealer, [new_message("m-3")])
    with database.transaction() as session:
        assert sorted(session.scalars(select(Message.id))) == ["m-1", "m-3"]


def test_answers_are_looked_up_for_a_group_in_one_query(database: Database) -> None:
    with database.transaction() as session:
        record_event(session, "evt-1", {"event_id": "evt-1", "messages": []})
        record_event(session, "evt-2", {"event_id": "evt-2"})
    statements = record_statements(database)
    with database.transaction() as session:
        found = events.answers(session, ["evt-2", "evt-new", "evt-1", "evt-2"])
        assert events.answers(session, []) == {}
    assert found == {"evt-1": {"event_id": "evt-1", "messages": []}, "evt-2": {"event_id": "evt-2"}}
    assert [statement.split()[0] for statement in statements if "events" in statement] == ["SELECT"]


def test_review_history_of_orders_and_customers(database: Database, sealer: Sealer) -> None:
    pair = {"kind": models.REVIEW_PAIR_KIND}
    with database.transaction() as session:
        assert reviews.last_review_pairs_at(session, ["C42"]) == {"C42": None}
        assert reviews.orders_with_review_pair(session, ["O-1001"]) == set()
        assert reviews.last_review_pairs_at(session, []) == {}
        assert reviews.orders_with_review_pair(session, []) == set()
        outbox.add(session, sealer, [new_message("m-0", kind="review_service")])
        outbox.add(session, sealer, [new_message("m-1", **pair, send_after=START)])
        outbox.add(session, sealer, [new_message("m-2", **pair, order_id="O-2")])
        outbox.add(session, sealer, [new_message("m-3", **pair, customer_id="C7")])
        # In the same transaction, as for a customer looked up again in a group.
        assert reviews.last_review_pairs_at(session, ["C42"]) == {"C42": LATER}
        outbox.cancel(session, "m-2", START)
    statements = record_statements(database)
    with database.transaction() as session:
        last = reviews.last_review_pairs_at(session, ["C42", "C8", "C42", "C7"])
        with_pair = reviews.orders_with_review_pair(session, ["O-2", "O-3", "O-1001", "O-2"])
    assert last == {"C42": START, "C7": LATER, "C8": None}  # cancelled pairs do not count
    assert with_pair == {"O-2", "O-1001"}  # cancelled or not
    assert len([statement for statement in statements if "FROM messages" in statement]) == 2


def test_a_groups_review_pairs_count_once_their_rows_are_written(
    database: Database, sealer: Sealer
) -> None:
    pair = {"kind": models.REVIEW_PAIR_KIND}
    with database.transaction() as session:
        record_event(session, "evt-taken", {})
        outbox.add(session, sealer, [new_message("m-0", **pair, send_after=START)])
    details = customers.Details("C42", "jan@example.nl", "Jan de Vries", "nl", START)

    def queue(event_id: str, message_id: str) -> None:
        record = events.Record(event_id, "order.delivered", "C42", "O-2", START, START, {})
        queued = new_message(message_id, **pair, order_id="O-2", send_after=LATER)
        pending.add(record, details, [queued])

    with database.transaction() as session:
        pending_rows.begin(session, ["evt-1"], ["C42", "C7"], ["O-1001", "O-2"])
        pending = pending_rows.of(session)
        reviews = pending.reviews
        assert reviews.order_has_pair("O-1001") and not reviews.order_has_pair("O-2")
        assert (reviews.last_pair_at("C42"), reviews.last_pair_at("C7")) == (START, None)
        # A pair undone with its event's savepoint (here its event id is taken) does not count.
        with pytest.raises(errors.Duplicate), database.savepoint(session):
            queue("evt-taken", "m-1")
            assert reviews.order_has_pair("O-2") and reviews.last_pair_at("C42") == LATER
            pending.write(session, sealer)
        assert not reviews.order_has_pair("O-2") and reviews.last_pair_at("C42") == START
        queue("evt-1", "m-2")
        pending.write(session, sealer)
        assert reviews.order_has_pair("O-2") and reviews.last_pair_at("C42") == LATER
        # After a cancellation the customers are asked again; orders keep their pairs.
        reviews.forget_customers()
        assert not reviews.knows("C42") and reviews.order_has_pair("O-2")
        reviews.look_up(session, ["C42"], [])
        assert reviews.last_pair_at("C42") == LATER


def record_statements(database: Database) -> list[str]:
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(database.engine, "before_cursor_execute", record)
    return statements
