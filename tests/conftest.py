"""Shared fixtures: a real SMTP server, real databases (SQLite file, PostgreSQL), a frozen clock."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy

from notifier.clock import FrozenClock
from notifier.service import Notifier
from notifier.settings import Settings
from notifier.store import events
from notifier.store.db import Database, Session
from tests.smtpd import SmtpServer

POSTGRES_URL = os.environ.get("NOTIFIER_TEST_POSTGRES_URL")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
TEST_ENCRYPTION_KEY = "hZ3s8x3nJ2tqk1k9Jr2m3o0Jb0sM7yYkE7JQbqkqS5U="
START = datetime(2026, 11, 23, 10, 0, tzinfo=AMSTERDAM)
"""A Monday morning inside the default send window."""


def postgres_schema_url(schema: str) -> str:
    assert POSTGRES_URL
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask 022: what files (0644) and folders (0755) get unless notifier says."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL server, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("NOTIFIER_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            # The key store's default schema (``store.keystore``), made at the engine's first use.
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema}_keys CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notifier.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """The schema at head on the test database, for store-level tests without an engine."""
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


def record_event(session: Session, event_id: str, response: dict[str, Any]) -> None:
    """An ``order.placed`` event row with no customer: what group-commit tests write."""
    events.record(
        session,
        event_id=event_id,
        type="order.placed",
        customer_id=None,
        order_id=None,
        occurred_at=START,
        received_at=START,
        response=response,
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def make_settings(database_url: str, smtp_server: SmtpServer) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_tls": "none",
            "secret_key": "test-secret-key",
            "encryption_key": TEST_ENCRYPTION_KEY,
            "base_url": "https://notifier.test",
            "api_tokens": ["test-token"],
            # Rendered in a thread: spawning render processes per engine would slow every
            # test; tests/mail/test_render_pool.py runs the pool, and the CLI tests the default.
            "render_processes": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def make_engine(
    make_settings: Callable[..., Settings], clock: FrozenClock
) -> AsyncIterator[Callable[..., Notifier]]:
    engines: list[Notifier] = []

    def make(**overrides: Any) -> Notifier:
        engine = Notifier(make_settings(**overrides), clock=clock)
        engine.upgrade_database()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., Notifier]) -> Notifier:
    return make_engine()


def customer(locale: str = "nl", **changes: Any) -> dict[str, Any]:
    base = {"id": "C42", "email": "jan@example.nl", "name": "Jan de Vries", "locale": locale}
    return base | changes


def order(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "O-1001",
        "number": "WP-1001",
        "currency": "EUR",
        "total": "123.45",
        "lines": [
            {"sku": "BRK-221", "name": "Remblokken voor", "quantity": 2, "unit_price": "34.95"},
            {"sku": "WIP-650", "name": "Ruitenwissers Bosch", "quantity": 1, "unit_price": "53.55"},
        ],
        "shipping_address": {
            "name": "Jan de Vries",
            "street": "Dorpsstraat 1",
            "postcode": "1234 AB",
            "city": "Utrecht",
            "country": "NL",
        },
    }
    return base | changes


def event(
    type: str,
    *,
    id: str | None = None,
    locale: str = "nl",
    at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A shop event as the backend posts it; ``extra`` overrides customer, order or data."""
    body: dict[str, Any] = {
        "id": id or f"evt-{uuid.uuid4().hex[:10]}",
        "type": type,
        "customer": customer(locale),
        "data": {},
    }
    if type.startswith("order."):
        body["order"] = order()
    if type == "order.shipped":
        body["data"] = {"carrier": "PostNL", "tracking_url": "https://postnl.example/track/3SABC"}
    if type == "order.verification_requested":
        body["data"] = {"question": "Klopt het dat je remblokken voor een Golf 7 bestelt?"}
    if at is not None:
        body["occurred_at"] = at.isoformat()
    body.update(extra)
    return body


async def until(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Wait for work under way in this loop to reach a point; fails the test after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)
