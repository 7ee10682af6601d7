"""Engine, transactions and migrations for SQLite and PostgreSQL alike.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed transaction
survives a power loss, as a queue must) and every transaction starts with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout
instead of failing when a read lock is upgraded; ``Database.reading`` starts
a plain ``BEGIN`` instead, which takes no write lock at all (a WAL reader
never blocks a writer), for look-ups that should not make intake wait. Its file is created 0600 (the
WAL and shared-memory files take the same mode) and it runs with
``secure_delete``, so deleted personal data is overwritten, not left in free
space. PostgreSQL uses psycopg 3.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from notifier import errors

__all__ = ["Database", "SchemaState", "Session", "alembic_config"]
log = logging.getLogger(__name__)
_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE unique_violation
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BACKENDS = ("sqlite", "postgresql")
PROBE_TIMEOUT_SECONDS = 5
_READ_ONLY = "notifier_read_only"
"""The execution option that makes ``reading`` sessions start SQLite's plain ``BEGIN``."""
"""How long a probe's connection and write may wait (a lock, a slow server) before it fails."""


class SchemaState(enum.Enum):
    """Where a database stands against this notifier's migrations."""

    MISSING = "missing"
    """No database file (SQLite) or no schema in it yet."""
    OTHER = "other"
    """A schema at another revision: older, or written by a newer notifier."""
    CURRENT = "current"


class Database:
    """Owns the engine; hands out one session per unit of work.

    ``variable`` names the setting the URL came from: errors of the URL, and
    of reaching the database at start, name it.
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, variable: str = "NOTIFIER_DATABASE_URL"
    ) -> None:
        self.url = url
        self.variable = variable
        parsed = _checked_url(url, variable)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.sqlite_file = _sqlite_file(parsed) if self.is_sqlite else None
        if self.sqlite_file is not None and not self.sqlite_file.parent.is_dir():
            raise errors.ConfigurationError(
                f"{variable}: the folder {self.sqlite_file.parent} does not exist; create it first",
                variable=variable,
            )
        self.engine = _make_engine(url, pool_size, variable)
        # Readiness opens a connection of its own each time, so it sees what a new one would:
        # a file made read-only, a server that refuses connections, a role gone read-only.
        self._probe_engine = _make_engine(url, pool_size, variable, probe=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True, "postgresql_readonly": True}),
            expire_on_commit=False,
        )

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
    def reading(self) -> Iterator[Session]:
        """A read-only transaction: one consistent snapshot that holds no write lock.

        On SQLite every ``transaction`` takes the database's one write lock
        from its start, so look-ups made there (decrypting a batch's
        recipients, say) keep the intake of events waiting. Only reads belong
        here: PostgreSQL refuses a write, and SQLite would take its lock late
        and might fail busy. Errors surface as in ``transaction``.
        """
        with _translated(), self._readers.begin() as session:
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

    @contextmanager
    def probe(self) -> Iterator[Connection]:
        """A transaction on a new connection that waits at most ``PROBE_TIMEOUT_SECONDS``.

        Any database error surfaces as ``ServiceUnavailable`` with the
        driver's first line: a probe's failure is an answer, not a bug.
        """
        try:
            with self._probe_engine.begin() as connection:
                if not self.is_sqlite:
                    connection.exec_driver_sql(
                        f"SET LOCAL statement_timeout = {PROBE_TIMEOUT_SECONDS * 1000}"
                    )
                yield connection
        except DBAPIError as exc:
            raise errors.ServiceUnavailable(_first_line(exc)) from exc

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (creating the SQLite file)."""
        with self._opened() as connection, connection.begin():
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def schema_state(self) -> SchemaState:
        """Compare the schema with this notifier's migrations; never creates or changes a thing.

        A database that cannot be reached raises ``ConfigurationError`` naming
        the variable: at start, that is what the operator must fix.
        """
        if self.sqlite_file is not None and not self.sqlite_file.exists():
            return SchemaState.MISSING
        with self._opened() as connection:
            # Read directly: alembic's MigrationContext would log two lines for each look.
            current = (
                set(connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
                if inspect(connection).has_table("alembic_version")
                else set()
            )
        if not current:
            return SchemaState.MISSING
        heads = set(ScriptDirectory.from_config(alembic_config(self.url)).get_heads())
        return SchemaState.CURRENT if current == heads else SchemaState.OTHER

    def checkpoint(self) -> None:
        """Copy SQLite's WAL into the database and truncate it (after an erasure).

        Until then the WAL holds the erased rows' old pages. A reader that
        holds an old snapshot keeps its frames; that is logged, and the next
        checkpoint truncates them. Nothing to do on PostgreSQL (see
        ``docs/security.md``, "Erasure on disk").
        """
        if not self.is_sqlite:
            return
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            busy, _frames, _copied = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            cursor.close()
        finally:
            connection.close()
        if busy:
            log.warning("database.checkpoint_busy: a reader kept the WAL; a later one truncates it")

    def is_current(self) -> bool:
        return self.schema_state() is SchemaState.CURRENT

    def dispose(self) -> None:
        self.engine.dispose()
        self._probe_engine.dispose()

    @contextmanager
    def _opened(self) -> Iterator[Connection]:
        """A connection; one that cannot be made is a configuration error, in one line."""
        try:
            connection = self.engine.connect()
        except DBAPIError as exc:
            raise errors.ConfigurationError(
                f"{self.variable}: cannot open the database: {_first_line(exc)}",
                variable=self.variable,
            ) from exc
        with connection:
            yield connection


def _checked_url(url: str, variable: str) -> URL:
    """The parsed URL of a backend notifier runs on, or an error naming ``variable``."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise errors.ConfigurationError(
            f"{variable}: not a database URL; expected e.g. sqlite:///notifier.db or "
            "postgresql+psycopg://user@host/dbname",
            variable=variable,
        ) from exc
    if parsed.get_backend_name() not in BACKENDS:
        raise errors.ConfigurationError(
            f"{variable}: notifier runs on sqlite or postgresql, not {parsed.drivername!r}",
            variable=variable,
        )
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL (also of a ``file:…?uri=true`` one); None in memory."""
    database = url.database
    if not database or database == ":memory:":
        return None
    return Path(database.removeprefix("file:"))


def _first_line(exc: DBAPIError) -> str:
    """The driver's own message, first line: no password, and not SQLAlchemy's statement and
    parameters, which hold data."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


NO_SCHEMA = (
    "the database has no notifier tables yet: call Notifier.upgrade_database() once "
    "(or run `notifier db upgrade`)"
)


def _no_schema(exc: DBAPIError) -> bool:
    """Whether a statement met a table the migrations create missing (SQLite or PostgreSQL)."""
    text = str(exc.orig)
    return "no such table" in text or ("relation" in text and "does not exist" in text)


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
        if _no_schema(exc):
            raise errors.ConfigurationError(NO_SCHEMA) from None
        raise errors.ServiceUnavailable(f"database unavailable: {exc.orig!r}") from exc
    except PoolTimeout as exc:
        # Every pooled connection stayed busy past the pool's timeout: overload, not a bug.
        raise errors.ServiceUnavailable("database busy: no free connection") from exc
    except DBAPIError as exc:
        if _no_schema(exc):
            raise errors.ConfigurationError(NO_SCHEMA) from None
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


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _make_engine(url: str, pool_size: int, variable: str, *, probe: bool = False) -> Engine:
    """The engine for ``url``; a ``probe`` one opens a new connection each time, quick to fail."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url,
                connect_args={"timeout": 30, "check_same_thread": False},
                poolclass=NullPool if probe else None,
            )
            event.listen(engine, "do_connect", _sqlite_private_file)
            event.listen(engine, "connect", _sqlite_on_connect)
            if probe:
                event.listen(engine, "connect", _sqlite_probe_timeout)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        if probe:
            return create_engine(
                url, poolclass=NullPool, connect_args={"connect_timeout": PROBE_TIMEOUT_SECONDS}
            )
        return create_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
        )
    except ImportError as exc:
        raise errors.ConfigurationError(
            f"{variable}: its database driver is not installed ({exc}); "
            "notifier's are sqlite and postgresql+psycopg",
            variable=variable,
        ) from exc


def _sqlite_private_file(_dialect: Any, _record: Any, cargs: tuple[Any, ...], _kw: Any) -> None:
    """Create the database file 0600 before SQLite does (with the umask's 0644): the WAL and
    shared-memory files copy the database's mode."""
    database = str(cargs[0]).removeprefix("file:").split("?", 1)[0] if cargs else ""
    if database in ("", ":memory:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before it returns, so an accepted event (202) survives a power
    # loss too; WAL's NORMAL is safe only against a crash of the process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted content is overwritten with zeros, not left in free pages for a copy to show.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_probe_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout={PROBE_TIMEOUT_SECONDS * 1000}")


def _sqlite_begin(connection: Any) -> None:
    read_only = connection.get_execution_options().get(_READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
