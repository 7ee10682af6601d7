"""``/readyz``: 200 while the database takes a write, 503 when it cannot, 200 again after.

Every outage is real: a read-only SQLite session, a disk that takes no more
bytes (the kernel's file-size limit on the serving process), a read-only
PostgreSQL session, PostgreSQL cut off by a TCP proxy.
"""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from notifier.clock import FrozenClock
from notifier.service import Notifier
from notifier.settings import Settings
from notifier.web.app import create_app
from tests.faults import TcpProxy, via_proxy
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import free_port

UNAVAILABLE = {"status": "unavailable"}


@asynccontextmanager
async def client_for(engine: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine, ["test-token"], run_worker=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@asynccontextmanager
async def engine_on(
    make_settings: Callable[..., Settings], clock: FrozenClock, url: str
) -> AsyncIterator[Notifier]:
    """An engine on ``url``, whose schema another engine has made."""
    engine = Notifier(make_settings(database_url=url), clock=clock)
    try:
        yield engine
    finally:
        engine.close()


async def test_ready_while_the_database_takes_writes(engine: Notifier) -> None:
    async with client_for(engine) as client:
        for _ in range(3):  # the probe rewrites one row: again and again
            answer = await client.get("/readyz")
            assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert (await client.get("/healthz")).json() == {"status": "ok"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_read_only_sqlite_session_is_not_ready(
    engine: Notifier,
    make_settings: Callable[..., Settings],
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Arrangement: the engine's SQLite file, to open it once more, read-only.
    path = engine.database.sqlite_file
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    async with engine_on(make_settings, clock, read_only) as stuck, client_for(stuck) as client:
        answer = await client.get("/readyz")
        assert answer.status_code == 503 and answer.json() == UNAVAILABLE
        assert (await client.get("/healthz")).status_code == 200  # alive all the same
    assert "readiness.lost" in caplog.text and "readonly" in caplog.text


@pytest.mark.postgres
async def test_a_read_only_postgres_session_is_not_ready(
    postgres_url: str,
    make_settings: Callable[..., Settings],
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writable = Notifier(make_settings(database_url=postgres_url), clock=clock)
    writable.upgrade_database()
    writable.close()
    read_only = f"{postgres_url}%20-cdefault_transaction_read_only%3Don"
    async with engine_on(make_settings, clock, read_only) as stuck, client_for(stuck) as client:
        answer = await client.get("/readyz")
        assert answer.status_code == 503 and answer.json() == UNAVAILABLE
    assert "read-only transaction" in caplog.text


@pytest.mark.postgres
async def test_postgres_cut_off_is_not_ready_until_it_is_back(
    postgres_url: str, make_settings: Callable[..., Settings], clock: FrozenClock
) -> None:
    target = sqlalchemy.make_url(postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    try:
        url = via_proxy(postgres_url, proxy.port)
        async with engine_on(make_settings, clock, url) as engine, client_for(engine) as client:
            engine.upgrade_database()
            assert (await client.get("/readyz")).status_code == 200
            proxy.cut()
            answer = await client.get("/readyz")
            assert answer.status_code == 503 and answer.json() == UNAVAILABLE
            proxy.restore()
            assert (await client.get("/readyz")).status_code == 200
    finally:
        proxy.close()


@pytest.mark.slow
def test_serve_is_not_ready_while_its_disk_takes_no_more_bytes(tmp_path: Path) -> None:
    """A full disk for the serving process alone: its file-size limit lowered to zero."""
    port = free_port()
    env = notifier_env(database_url=f"sqlite:///{tmp_path / 'notifier.db'}", api_tokens="t")
    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port)], env, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        wait_until(http_ready(f"{base}/readyz"), 60, "notifier serve to be ready")
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (0, limits[1]))
        answer = httpx.get(f"{base}/readyz")
        assert answer.status_code == 503 and answer.json() == UNAVAILABLE
        assert httpx.get(f"{base}/healthz").status_code == 200
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, limits)
        wait_until(http_ready(f"{base}/readyz"), 10, "readiness once the disk takes bytes")
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = log.read_text()
    assert "readiness.regained" in output
