"""Engine, transactions and migrations for SQLite and PostgreSQL alike.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed transaction
survives a power loss, as a queue must) and every transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout
instead of failing when a read lock is upgraded. PostgreSQL uses psycopg 3.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from notifier import errors

__all__ = ["Database", "Session", "alembic_config"]
log = logging.getLogger(__name__)
_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE unique_violation
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Database:
    """Owns the engine; hands out one session per unit of work."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _make_engine(url, pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error.

        A lost or refused database connection, or a pool with no free
        connection, surfaces as ``ServiceUnavailable`` so callers can answer
        503 and retry, never 500; a unique-key violation
        surfaces as ``Duplicate``, which is how idempotency holds under races.
        A value the database refuses (text it cannot hold, a number out of
        range, another constraint broken) surfaces as ``Unstorable``, a 422.
        """
        with _translated(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def savepoint(self, session: Session) -> Iterator[None]:
        """A SAVEPOINT in ``session``'s transaction: released on success, rolled back on error.

        Errors surface as in ``transaction``. A ``Duplicate`` (or any error of
        the work inside) has rolled back this savepoint only, so the
        transaction may go on and commit the rest; after a
        ``ServiceUnavailable`` the caller must give the transaction up.
        """
        with _translated(), session.begin_nested():
            yield

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic."""
        with self.engine.begin() as connection:
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def is_current(self) -> bool:
        return inspect(self.engine).has_table("alembic_version")

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _translated() -> Iterator[None]:
    """Database errors as notifier's: ``Duplicate``, ``Unstorable``, ``ServiceUnavailable``.

    Any other database error (a bug, not the input) is a ``StorageError``,
    logged with its driver's class and SQLSTATE (its text may hold data).
    """
    try:
        yield
    except IntegrityError as exc:
        if _is_unique_violation(exc):
            raise errors.Duplicate("a record with this key exists already") from exc
        raise errors.Unstorable(f"the database refused a value: {_first_line(exc)}") from exc
    except DataError as exc:
        raise errors.Unstorable(f"the database refused a value: {_first_line(exc)}") from exc
    except UnicodeEncodeError as exc:
        # The driver could not encode a string as UTF-8 (an unpaired surrogate).
        raise errors.Unstorable(f"the database refused a value: {exc.reason}") from exc
    except OperationalError as exc:
        raise errors.ServiceUnavailable(f"database unavailable: {exc.orig!r}") from exc
    except PoolTimeout as exc:
        # Every pooled connection stayed busy past the pool's timeout: overload, not a bug.
        raise errors.ServiceUnavailable("database busy: no free connection") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise errors.ServiceUnavailable("database connection lost") from exc
        failed = type(exc.orig).__name__
        log.error("database.failed error=%s sqlstate=%s", failed, getattr(exc.orig, "sqlstate", ""))
        raise errors.StorageError(f"the database failed the request: {failed}") from exc


def _is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the key of a record exists already (and not, say, a NOT NULL broken)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return code in (sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
    return getattr(exc.orig, "sqlstate", None) == _UNIQUE_VIOLATION


def _first_line(exc: DBAPIError) -> str:
    """The driver's message without SQLAlchemy's statement and parameters (they hold data)."""
    text = str(exc.orig).strip()
    return text.splitlines()[0] if text else type(exc.orig).__name__


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _make_engine(url: str, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before it returns, so an accepted event (202) survives a power
    # loss too; WAL's NORMAL is safe only against a crash of the process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
