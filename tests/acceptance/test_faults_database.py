"""The database going away: the API says 503 with Retry-After (never 500), the sender keeps
its outcomes until it can write them, and a worker whose connections are killed recovers by
itself without losing a message.

Outages are real: a TCP proxy in front of PostgreSQL severs every connection and refuses new
ones, or the server terminates the worker's backends (``pg_terminate_backend``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from notifier.clock import FrozenClock
from notifier.delivery.dispatcher import Transport
from notifier.delivery.transport import SmtpConfig, SmtpTransport
from notifier.service import Notifier
from notifier.settings import Settings
from notifier.web.app import create_app
from tests.conftest import TEST_ENCRYPTION_KEY, event
from tests.faults import (
    TcpProxy,
    count_sent,
    graceful_stop,
    outbox_state,
    queue_due_messages,
    queue_messages,
    reconcile,
    terminate_backends,
    via_proxy,
    with_application_name,
)
from tests.processes import notifier_env, start, wait_until
from tests.smtpd import SmtpServer, free_port

TOKEN = "test-token"


def settings_for(url: str, smtp: SmtpServer | None = None) -> Settings:
    return Settings(
        database_url=url,
        smtp_host=smtp.host if smtp else "127.0.0.1",
        smtp_port=smtp.port if smtp else free_port(),
        smtp_tls="none",
        secret_key="test-secret-key",
        encryption_key=TEST_ENCRYPTION_KEY,
        base_url="https://notifier.test",
        api_tokens=[TOKEN],
    )


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    target = sqlalchemy.make_url(postgres_url)
    server = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    yield server
    server.close()


@pytest.fixture
async def api(clock: FrozenClock) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """An API client factory over in-process apps; engines are closed afterwards."""
    engines: list[Notifier] = []
    clients: list[httpx.AsyncClient] = []

    def make(url: str, *, migrate: bool = True) -> httpx.AsyncClient:
        engine = Notifier(settings_for(url), clock=clock)
        if migrate:
            engine.upgrade_database()
        engines.append(engine)
        transport = httpx.ASGITransport(app=create_app(engine, [TOKEN], run_worker=False))
        client = httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for engine in engines:
        engine.close()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"] == "unavailable"


async def test_no_database_at_all_is_503_with_retry_after(
    api: Callable[..., httpx.AsyncClient],
) -> None:
    """PostgreSQL that is not there (nothing listens on the port): 503, never 500."""
    client = api(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test", migrate=False)
    assert_unavailable(await client.post("/v1/events", json=event("order.placed")))
    assert_unavailable(await client.get("/v1/messages/msg-1"))
    assert_unavailable(await client.get("/v1/customers/C42/messages"))
    assert_unavailable(await client.get("/metrics"))
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.postgres
async def test_the_api_is_503_while_the_database_is_away_and_recovers(
    api: Callable[..., httpx.AsyncClient], postgres_url: str, proxy: TcpProxy
) -> None:
    client = api(via_proxy(postgres_url, proxy.port))
    first = await client.post("/v1/events", json=event("order.placed", id="evt-before"))
    assert first.status_code == 202
    message_id = first.json()["messages"][0]["id"]

    proxy.cut()
    assert_unavailable(await client.post("/v1/events", json=event("order.placed", id="evt-during")))
    assert_unavailable(await client.get(f"/v1/messages/{message_id}"))
    assert_unavailable(await client.put("/v1/customers/C42/preferences", json={"reviews": False}))
    assert (await client.get("/healthz")).status_code == 200

    proxy.restore()
    # The pool's connections died with the outage; pre-ping replaces them unseen.
    again = await client.post("/v1/events", json=event("order.placed", id="evt-during"))
    assert again.status_code == 202, again.text
    assert (await client.get(f"/v1/messages/{message_id}")).json()["status"] == "scheduled"
    kinds = [m["id"] for m in (await client.get("/v1/customers/C42/messages")).json()]
    assert len(kinds) == 2


class CutsTheDatabase:
    """A transport that, on its first delivery, takes the database away for ``outage`` seconds.

    So the mail has gone out but its outcome cannot be written yet: the moment where a lost
    outcome would turn into a duplicate once the lease expires.
    """

    def __init__(self, inner: Transport, proxy: TcpProxy, outage: float) -> None:
        self._inner = inner
        self._proxy = proxy
        self._outage = outage
        self.timer: threading.Timer | None = None

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> str:
        reply = await self._inner.send(sender, recipients, data)
        if self.timer is None:
            self._proxy.cut()
            self.timer = threading.Timer(self._outage, self._proxy.restore)
            self.timer.start()
        return reply

    async def close(self) -> None:
        await self._inner.close()
        if self.timer is not None:
            self.timer.join()


@pytest.mark.postgres
async def test_outcomes_are_written_after_the_database_comes_back(
    postgres_url: str, proxy: TcpProxy, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    """Mid-batch the database goes away for 1.5 s: the dispatcher waits it out and writes
    every outcome, so nothing stays leased and nothing is sent twice."""
    url = via_proxy(postgres_url, proxy.port)
    transport = CutsTheDatabase(
        SmtpTransport(SmtpConfig(smtp_server.host, smtp_server.port, tls="none")), proxy, 1.5
    )
    engine = Notifier(settings_for(url, smtp_server), clock=clock, transport=transport)
    try:
        engine.upgrade_database()
        ids = queue_messages(engine.database, 40, clock.now())
        assert await engine.dispatch_due() == 40
    finally:
        await engine.stop()
        engine.close()
    assert transport.timer is not None
    state = outbox_state(postgres_url)
    assert state.with_status("sent") == set(ids)
    assert not state.lease_expired
    seen = reconcile(smtp_server, state)
    assert seen.delivered == set(ids) and seen.twice == {}


WORKER_MESSAGES = 2_000
BATCH = 50


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_whose_connections_are_killed_recovers_by_itself(
    postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """Its PostgreSQL backends are terminated five times mid-run; it goes on alone."""
    queue_due_messages(postgres_url, WORKER_MESSAGES)
    name = f"notifier-fault-{uuid.uuid4().hex[:8]}"
    env = notifier_env(
        database_url=with_application_name(postgres_url, name),
        smtp_host=smtp_server.host,
        smtp_port=str(smtp_server.port),
        smtp_tls="none",
        poll_interval="0.2",
        batch_size=str(BATCH),
        lease_seconds="10",
    )
    log = tmp_path / "worker.log"
    worker = start(["worker"], env, tmp_path, log)
    killed = 0
    try:
        for round_ in range(1, 6):
            target = round_ * WORKER_MESSAGES // 8
            wait_until(lambda: len(smtp_server.received) >= target, 120, f"{target} mails")  # noqa: B023
            killed += terminate_backends(postgres_url, name)
        wait_until(lambda: count_sent(postgres_url) == WORKER_MESSAGES, 240, "every message sent")
        assert worker.poll() is None, "the worker died"
    finally:
        graceful_stop(worker, log)
    assert killed >= 5

    state = outbox_state(postgres_url)
    assert set(state.status.values()) == {"sent"}
    seen = reconcile(smtp_server, state)
    assert len(seen.delivered) == WORKER_MESSAGES
    assert set(seen.twice) <= state.lease_expired
    assert seen.extra <= BATCH * 5
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
