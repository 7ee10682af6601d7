"""Scale-out on PostgreSQL: several ``notifier worker`` or ``serve`` processes share one outbox."""

from __future__ import annotations

import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.store import outbox
from notifier.store.db import Database
from tests.conftest import event
from tests.faults import queue_due_messages
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import SmtpServer, free_port

MESSAGES = 10_000
WORKERS = 4
EVENTS = 120


@pytest.mark.postgres
@pytest.mark.slow
def test_four_workers_deliver_every_message_exactly_once(
    postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    queue_due_messages(postgres_url, MESSAGES)
    env = sending_env(postgres_url, smtp_server, poll_interval="0.2", batch_size="100")
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


def same_mail(answer: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """What an event's answer says was queued, whatever became of it since."""
    return answer["event_id"], [(message["id"], message["kind"]) for message in answer["messages"]]


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_with_two_processes_accepts_each_event_once_and_sends_it_once(
    postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    database = Database(postgres_url)
    database.upgrade()
    database.dispose()
    port = free_port()
    env = sending_env(postgres_url, smtp_server, api_tokens="t0ken")
    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port), "--workers", "2"], env, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    bodies = [event("order.placed", id=f"evt-{n}") for n in range(EVENTS)]
    for number, body in enumerate(bodies):
        body["customer"]["id"] = f"C{number % 7}"
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve to answer")
        # Every event twice, from 8 threads on fresh connections, so both processes see
        # events and some repeats land on the process that did not take the first.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda body: post(base, body), bodies + bodies))
        wait_until(lambda: len(smtp_server.received) >= EVENTS, 60, f"{EVENTS} confirmations")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output[-3000:]
    # Each repeat (at most 8 requests are in flight) got the first answer's event and
    # messages, from either process; their status is as they stand now (sent, perhaps).
    assert [status for status, _ in answers[:EVENTS]] == [202] * EVENTS
    assert [(status, same_mail(answer)) for status, answer in answers[EVENTS:]] == [
        (200, same_mail(answer)) for _, answer in answers[:EVENTS]
    ]
    assert len(set(re.findall(r"Started server process \[(\d+)\]", output))) == 2
    counts = smtp_server.count_by_message_id()
    assert len(counts) == EVENTS and set(counts.values()) == {1}


def sending_env(url: str, smtp_server: SmtpServer, **settings: str) -> dict[str, str]:
    """The environment of a process on this database that sends to the test SMTP server."""
    return notifier_env(
        database_url=url,
        smtp_host=smtp_server.host,
        smtp_port=str(smtp_server.port),
        smtp_tls="none",
        **settings,
    )


def post(base: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = httpx.post(
        f"{base}/v1/events", json=body, headers={"Authorization": "Bearer t0ken"}, timeout=30
    )
    answer: dict[str, Any] = response.json()
    return response.status_code, answer
