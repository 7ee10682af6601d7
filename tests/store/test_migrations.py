"""The Alembic migrations build exactly the schema the models describe, and go back down."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from notifier.clock import FrozenClock
from notifier.crypto import Sealer
from notifier.store import outbox, reviews
from notifier.store.db import Database, alembic_config
from notifier.store.models import Base
from tests.conftest import TEST_ENCRYPTION_KEY


def _differences(database: Database) -> list[Any]:
    with database.engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def _downgrade(database: Database, revision: str) -> None:
    with database.engine.begin() as connection:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_head_matches_the_models(database: Database) -> None:
    assert _differences(database) == []


def test_every_migration_goes_down_and_up_again(database: Database) -> None:
    _downgrade(database, "base")
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    database.upgrade()
    assert _differences(database) == []


def _plans(database: Database, work: Callable[[Session], object]) -> list[list[str]]:
    """SQLite's query plan of each SELECT that ``work`` ran, in a transaction of its own."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's planner picks by table statistics: an empty table says nothing")
    executed: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            executed.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        with database.transaction() as session:
            work(session)
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)
    with database.engine.connect() as connection:
        return [
            [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
            for sql, params in executed
        ]


def test_the_review_cap_reads_only_its_partial_index(database: Database) -> None:
    """On SQLite the cap's lookup never reads table rows (reading them was 19 % of HTTP intake)."""
    plans = _plans(
        database,
        lambda session: reviews.last_review_pairs_at(session, ["C1", "C2"]),
    )
    assert any("COVERING INDEX ix_messages_review_pairs" in step for step in plans[-1]), plans


def test_a_claim_reads_due_mail_in_index_order_and_sorts_nothing(
    database: Database, clock: FrozenClock
) -> None:
    """Sorting the due rows made every claim under a 1M campaign read a million of them."""
    now = clock.now()
    queued = [
        outbox.NewMessage(
            id=f"m{n}",
            customer_id="C1",
            kind="newsletter",
            category="newsletter",
            send_after=now,
            context={},
            created_at=now,
            priority=n % 3,
        )
        for n in range(6)
    ]
    with database.transaction() as session:
        outbox.add(session, Sealer([TEST_ENCRYPTION_KEY], "test-secret-key"), queued)

    def claim(session: Session) -> None:
        leased = outbox.lease_due(
            session, owner="w", now=now, limit=4, lease=timedelta(minutes=1), dead_before=now
        )
        assert len(leased) == 4

    plans = _plans(database, claim)
    assert plans and all("ix_messages_due" in " ".join(plan) for plan in plans[1:]), plans
    for plan in plans:
        assert not any("TEMP B-TREE" in step or "MULTI-INDEX OR" in step for step in plan), plan
