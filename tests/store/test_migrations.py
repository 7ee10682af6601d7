"""The Alembic migrations build exactly the schema the models describe, and go back down."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect

from notifier.store import reviews
from notifier.store.db import Database, alembic_config
from notifier.store.models import Base


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


def test_the_review_cap_reads_only_its_partial_index(database: Database) -> None:
    """On SQLite the cap's lookup never reads table rows (reading them was 19 % of HTTP intake)."""
    if database.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's planner picks by table statistics: an empty table says nothing")
    executed: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", keep)
    with database.transaction() as session:
        assert reviews.last_review_pairs_at(session, ["C1", "C2"]) == {"C1": None, "C2": None}
    event.remove(database.engine, "before_cursor_execute", keep)
    (statement, parameters) = executed[-1]
    with database.engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    assert any("COVERING INDEX ix_messages_review_pairs" in row[-1] for row in plan), plan
