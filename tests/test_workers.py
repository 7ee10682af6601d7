"""Scale-out on PostgreSQL: several ``notifier worker`` processes share one outbox."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.crypto import Sealer
from notifier.store import customers, outbox
from notifier.store.db import Database
from tests.conftest import TEST_ENCRYPTION_KEY, order
from tests.processes import notifier_env, start, wait_until
from tests.smtpd import SmtpServer

MESSAGES = 10_000
WORKERS = 4


def queue_due_messages(url: str, count: int) -> None:
    """Queue ``count`` due order confirmations for 100 customers in one transaction."""
    database = Database(url)
    database.upgrade()
    sealer = Sealer([TEST_ENCRYPTION_KEY], "test-secret-key")
    now = datetime.now(UTC)
    context = {"order": order(), "data": {}}
    with database.transaction() as session:
        for number in range(100):
            customers.upsert(
                session,
                sealer,
                customer_id=f"C{number}",
                email=f"customer{number}@example.nl",
                name=f"Klant {number}",
                locale="nl" if number % 2 else "en",
                now=now,
            )
        outbox.add(
            session,
            sealer,
            [
                outbox.NewMessage(
                    id=f"bulk-{index}",
                    customer_id=f"C{index % 100}",
                    kind="order_confirmation",
                    category="order_updates",
                    send_after=now,
                    context=context,
                )
                for index in range(count)
            ],
            now,
        )
    database.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_deliver_every_message_exactly_once(
    postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    queue_due_messages(postgres_url, MESSAGES)
    env = notifier_env(
        database_url=postgres_url,
        smtp_host=smtp_server.host,
        smtp_port=str(smtp_server.port),
        smtp_tls="none",
        poll_interval="0.2",
        batch_size="100",
    )
    workers = [
        start(["worker"], env, tmp_path, tmp_path / f"worker{n}.log") for n in range(WORKERS)
    ]
    try:
        wait_until(lambda: len(smtp_server.received) >= MESSAGES, 240, f"{MESSAGES} mails")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=30) for worker in workers]
    assert codes == [0] * WORKERS, [
        (tmp_path / f"worker{n}.log").read_text()[-2000:] for n in range(WORKERS)
    ]
    counts = smtp_server.count_by_message_id()
    assert len(counts) == MESSAGES
    assert set(counts.values()) == {1}
    database = Database(postgres_url)
    with database.transaction() as session:
        depth = {(status, category): n for status, category, n in outbox.depth(session)}
    database.dispose()
    assert depth == {("sent", "order_updates"): MESSAGES}
    logs = [(tmp_path / f"worker{n}.log").read_text() for n in range(WORKERS)]
    busy = sum("dispatch" in log or "worker.started" in log for log in logs)
    assert busy == WORKERS
