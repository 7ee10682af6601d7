"""The database on disk: SQLite files only their owner reads, deleted data overwritten."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from notifier import errors
from notifier.store.db import Database


@contextmanager
def upgraded(url: str) -> Iterator[Database]:
    """A database at ``url`` with notifier's schema, its connections closed afterwards."""
    database = Database(url)
    try:
        database.upgrade()
        yield database
    finally:
        database.dispose()


def test_sqlite_files_are_created_0600(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "notifier.db"
    with upgraded(f"sqlite:///{path}") as database, database.transaction() as session:
        session.execute(text("SELECT 1"))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("notifier.db*")}
    assert modes == {"notifier.db": 0o600, "notifier.db-wal": 0o600, "notifier.db-shm": 0o600}


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "notifier.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    with upgraded(f"sqlite:///{path}"):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the operator's choice, not ours


def test_sqlite_overwrites_what_it_deletes_and_the_checkpoint_empties_the_wal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notifier.db"
    secret = b"zoe.celik@voorbeeld.nl " * 40
    with upgraded(f"sqlite:///{path}") as database:
        with database.transaction() as session:
            assert session.execute(text("PRAGMA secure_delete")).scalar() == 1
            session.execute(text("CREATE TABLE scratch (value BLOB)"))
            session.execute(text("INSERT INTO scratch VALUES (:v)"), {"v": secret})
        with database.transaction() as session:
            session.execute(text("DELETE FROM scratch"))
        assert Path(f"{path}-wal").stat().st_size > 0
        database.checkpoint()
        assert Path(f"{path}-wal").stat().st_size == 0
    assert b"zoe.celik" not in path.read_bytes()


@pytest.mark.postgres
def test_the_checkpoint_is_nothing_on_postgresql(postgres_url: str) -> None:
    with upgraded(postgres_url) as database:
        database.checkpoint()


def test_a_reading_transaction_takes_no_write_lock_on_sqlite(tmp_path: Path) -> None:
    """A claim's look-ups read here, so an event's commit must not wait for them."""
    path = tmp_path / "notifier.db"
    with upgraded(f"sqlite:///{path}") as database:
        with database.transaction() as session:
            session.execute(text("CREATE TABLE scratch (value INTEGER)"))
        with database.reading() as session:
            session.execute(text("SELECT count(*) FROM scratch")).scalar()  # a snapshot held
            writer = sqlite3.connect(path, timeout=0.5, isolation_level=None)
            try:  # waits at most 0.5 s, then raises, if the reader holds the lock
                writer.execute("BEGIN IMMEDIATE")
                writer.execute("INSERT INTO scratch VALUES (1)")
                writer.execute("COMMIT")
            finally:
                writer.close()
            assert session.execute(text("SELECT count(*) FROM scratch")).scalar() == 0
        with database.transaction() as session:
            assert session.execute(text("SELECT count(*) FROM scratch")).scalar() == 1


@pytest.mark.postgres
def test_a_reading_transaction_refuses_a_write_on_postgresql(postgres_url: str) -> None:
    with upgraded(postgres_url) as database:
        with pytest.raises(errors.NotifierError), database.reading() as session:
            session.execute(text("DELETE FROM workers"))
        with database.transaction() as session:  # the pooled connection writes again
            session.execute(text("DELETE FROM workers"))
