"""The key store: each customer's data key, wrapped by the master key, kept apart from the data.

It lives in a database of its own (``NOTIFIER_KEYSTORE_URL``): by default a
SQLite file in ``<database folder>-keys/`` (folder 0700, file 0600), outside
the data folder's backups, or on PostgreSQL a schema ``<schema>_keys`` beside
the database's. Erasure deletes a customer's row here first: a backup of the
database restored later then holds only ciphertext no key opens.

A row names its owner by a keyed hash of the customer id, never the id: the
key store alone says nothing about who the customers are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from notifier import errors
from notifier.datakeys import DataKey
from notifier.store.db import Database

VARIABLE = "NOTIFIER_KEYSTORE_URL"
SCHEMA_VERSION = 1
"""The key store's own schema version (no Alembic: two tables that change rarely)."""

_metadata = MetaData()
_data_keys = Table(
    "data_keys",
    _metadata,
    Column("key_id", String(32), primary_key=True),
    Column("owner", String(64), nullable=False, unique=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
_version = Table("keystore_version", _metadata, Column("version", Integer, nullable=False))


def default_url(database_url: str, sqlite_file: Path | None) -> str:
    """Where the key store lives when ``NOTIFIER_KEYSTORE_URL`` is unset.

    SQLite: ``<folder>-keys/keystore.db`` beside the database's folder, so a
    copy of that folder does not carry it. PostgreSQL: the same database,
    schema ``<schema>_keys`` (chosen at first use, see ``KeyStore``).
    """
    if database_url.startswith("sqlite"):
        if sqlite_file is None:
            return "sqlite://"
        folder = sqlite_file.resolve().parent
        return f"sqlite:///{folder.with_name(folder.name + '-keys') / 'keystore.db'}"
    return database_url


class KeyStore:
    """Wrapped data keys by key id and by owner; opened (and created) at first use.

    ``own_schema`` (the PostgreSQL default) keeps the tables in a schema
    named after the connection's current one plus ``_keys``.
    """

    def __init__(self, url: str, *, own_schema: bool = False) -> None:
        self.url = url
        self._own_schema = own_schema and not url.startswith("sqlite")
        self._database: Database | None = None
        self.schema: str | None = None

    @property
    def sqlite_file(self) -> Path | None:
        return self._opened().sqlite_file

    def fetch(self, key_ids: Collection[str]) -> list[DataKey]:
        """The keys among ``key_ids`` that still exist, in one query."""
        if not key_ids:
            return []
        with self._connection() as connection:
            rows = connection.execute(
                select(_data_keys.c.key_id, _data_keys.c.owner, _data_keys.c.wrapped).where(
                    _data_keys.c.key_id.in_(list(key_ids))
                )
            ).all()
        return [DataKey(row.key_id, row.owner, row.wrapped) for row in rows]

    def of_owner(self, owner: str) -> DataKey | None:
        with self._connection() as connection:
            row = connection.execute(
                select(_data_keys.c.key_id, _data_keys.c.wrapped).where(_data_keys.c.owner == owner)
            ).first()
        return DataKey(row.key_id, owner, row.wrapped) if row is not None else None

    def add(self, key: DataKey) -> DataKey:
        """Store ``key`` (committed on return); the owner's existing key if one won a race."""
        try:
            with self._connection() as connection:
                connection.execute(
                    insert(_data_keys).values(
                        key_id=key.key_id,
                        owner=key.owner,
                        wrapped=key.wrapped,
                        created_at=datetime.now(UTC),
                    )
                )
        except errors.Duplicate:
            existing = self.of_owner(key.owner)
            if existing is None:
                raise
            return existing
        return key

    def destroy(self, owner: str) -> bool:
        """Delete the owner's key (committed before it returns); whether there was one."""
        with self._connection() as connection:
            result = connection.execute(delete(_data_keys).where(_data_keys.c.owner == owner))
        self._opened().checkpoint()  # the WAL held the deleted row's page
        return bool(result.rowcount)

    def count(self) -> int:
        with self._connection() as connection:
            counted = connection.execute(select(func.count()).select_from(_data_keys))
            return int(counted.scalar_one())

    def page(self, after: str | None, limit: int) -> list[DataKey]:
        """Up to ``limit`` keys after key id ``after``, in key id order (for re-wrapping)."""
        query = select(_data_keys.c.key_id, _data_keys.c.owner, _data_keys.c.wrapped)
        if after is not None:
            query = query.where(_data_keys.c.key_id > after)
        with self._connection() as connection:
            rows = connection.execute(query.order_by(_data_keys.c.key_id).limit(limit)).all()
        return [DataKey(row.key_id, row.owner, row.wrapped) for row in rows]

    def rewrap(self, key: DataKey, wrapped: bytes) -> bool:
        """Replace ``key``'s wrapping unless it changed meanwhile; whether it was replaced."""
        with self._connection() as connection:
            result = connection.execute(
                update(_data_keys)
                .where(_data_keys.c.key_id == key.key_id, _data_keys.c.wrapped == key.wrapped)
                .values(wrapped=wrapped)
            )
        return bool(result.rowcount)

    def dispose(self) -> None:
        if self._database is not None:
            self._database.dispose()

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection inside one committed transaction, errors translated as the database's."""
        with self._opened().transaction() as session:
            connection = session.connection()
            if self.schema is not None:
                connection = connection.execution_options(schema_translate_map={None: self.schema})
            yield connection

    def _opened(self) -> Database:
        if self._database is None:
            database = _database(self.url)
            self._database = database
            try:
                self._create_schema(database)
            except BaseException:
                self._database = None
                database.dispose()
                raise
        return self._database

    def _create_schema(self, database: Database) -> None:
        """The tables and their version row, if missing; a newer version is refused."""
        with database.transaction() as session:
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                # Processes starting together must not race to create it: one does, the rest wait.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATION_LOCK})")
            if self._own_schema:
                current = connection.exec_driver_sql("SELECT current_schema()").scalar_one()
                self.schema = f"{current}_keys"
                connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                connection = connection.execution_options(schema_translate_map={None: self.schema})
            _metadata.create_all(connection, checkfirst=True)
            version = connection.execute(select(_version.c.version)).scalar()
            if version is None:
                connection.execute(insert(_version).values(version=SCHEMA_VERSION))
            elif version > SCHEMA_VERSION:
                raise errors.ConfigurationError(
                    f"{VARIABLE}: the key store is of a newer notifier (version {version})",
                    variable=VARIABLE,
                )


_CREATION_LOCK = 0x6B657973  # "keys": the advisory lock held while the tables are created


def _database(url: str) -> Database:
    """The key store's database; its SQLite folder is made 0700 when missing."""
    with contextlib.suppress(ArgumentError, ValueError):  # a bad URL: Database names the variable
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            folder = Path(str(parsed.database).removeprefix("file:")).parent
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Database(url, pool_size=2, variable=VARIABLE)
