"""Crashes and stops of real ``notifier`` processes: nothing lost, duplicates bounded.

A process killed with SIGKILL mid-send leaves what it had claimed ``sending``.
Its heartbeat row (``store.workers``) stops changing, and once it is older than
``NOTIFIER_HEARTBEAT_TIMEOUT`` (10 s) any worker, the restarted one or a survivor,
takes those messages over at once, without waiting for the lease, records an
attempt ``lease_expired`` for each, and sends them. Outcomes are committed
within milliseconds of the server's reply, so the ones that arrive twice are
only the sends in flight at the kill plus one commit's worth: at most
``DUPLICATES`` with 8 connections, each on record. A worker paused past the
takeover and then continued sends nothing more (the fence). A SIGTERM instead
lets the sends in flight finish and gives the rest back: exactly once.

These run with the default lease and heartbeat unless a test says why not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import select

from notifier.delivery.dispatcher import PIPELINE_DEPTH
from notifier.store.models import Worker
from tests.faults import (
    Faults,
    FaultySmtpServer,
    count_sent,
    graceful_stop,
    kill,
    message_id_counts,
    outbox_state,
    queue_due_messages,
    reconcile,
    with_application_name,
)
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import SmtpServer, free_port

MESSAGES = 1_500
BATCH = 200
"""The default claim size: the duplicates' bound comes from the recorder, not from batches."""
HELD = PIPELINE_DEPTH * BATCH
"""The most one worker has leased at any moment."""
DUPLICATES = 32
"""Issue 18's bound after one SIGKILL: the 8 sends in flight plus one commit's worth."""
RECOVERY = 30.0
"""Seconds within which every message is delivered after a restart, or after a kill."""
LEASE_SECONDS = 10
"""The smallest lease the settings allow (the graceful and render-process tests)."""


def worker_env(url: str, server: SmtpServer, **extra: str) -> dict[str, str]:
    settings = {
        "database_url": url,
        "smtp_host": server.host,
        "smtp_port": str(server.port),
        "smtp_tls": "none",
        "poll_interval": "0.2",
        "batch_size": str(BATCH),
    }
    return notifier_env(**(settings | extra))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database for worker processes (the shared ``database_url`` serves in-process engines)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notifier.db'}"
    postgres: str = request.getfixturevalue("postgres_url")
    return postgres


@pytest.mark.slow
def test_serve_killed_mid_send_and_restarted_delivers_all_within_seconds(
    url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """SIGKILL of ``serve`` at full speed, then a restart at once: everything is delivered
    within ``RECOVERY`` seconds of the restart, at most ``DUPLICATES`` of it twice."""
    queue_due_messages(url, MESSAGES)
    env = worker_env(url, smtp_server, api_tokens="t0ken")
    port = free_port()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start(["serve", "--port", str(port)], env, tmp_path, first_log)
    try:
        wait_until(lambda: len(smtp_server.received) >= MESSAGES // 5, 180, "a fifth of the mail")
    finally:
        kill(first)
    at_kill = outbox_state(url)
    assert len(at_kill.leased) <= HELD
    assert at_kill.with_status("scheduled"), "killed too late: nothing left to prove"

    restarted = time.monotonic()
    second = start(["serve", "--port", str(port)], env, tmp_path, second_log)
    try:
        wait_until(lambda: count_sent(url) == MESSAGES, 120, f"{MESSAGES} messages sent")
        took = time.monotonic() - restarted
        wait_until(http_ready(f"http://127.0.0.1:{port}/readyz"), 30, "serve to be ready")
    finally:
        second.terminate()  # uvicorn ends on the signal it was sent: no exit code to check
        second.wait(timeout=60)

    state = outbox_state(url)
    assert set(state.status.values()) == {"sent"}
    seen = reconcile(smtp_server, state)
    assert len(seen.delivered) == MESSAGES
    # Every duplicate was taken over from the dead process, and says so in the log.
    assert set(seen.twice) <= state.lease_expired
    assert state.lease_expired == at_kill.leased
    assert seen.extra <= DUPLICATES, f"{seen.extra} duplicates"
    assert set(seen.twice.values()) <= {2}
    assert took < RECOVERY, f"the restart took {took:.1f}s to deliver everything"


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_on_postgres_one_killed(
    postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """The survivor takes the dead worker's mail over once its heartbeat is stale: no restart,
    no lease wait; everything delivered within ``RECOVERY`` seconds of the kill."""
    queue_due_messages(postgres_url, MESSAGES)
    env = worker_env(postgres_url, smtp_server)
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    victim, survivor = (start(["worker"], env, tmp_path, log) for log in logs)
    try:
        wait_until(lambda: len(smtp_server.received) >= MESSAGES // 5, 180, "a fifth of the mail")
        kill(victim)
        killed = time.monotonic()
        at_kill = outbox_state(postgres_url)
        wait_until(lambda: count_sent(postgres_url) == MESSAGES, 120, f"{MESSAGES} messages sent")
        took = time.monotonic() - killed
    finally:
        kill(victim)
        graceful_stop(survivor, logs[1])

    state = outbox_state(postgres_url)
    assert set(state.status.values()) == {"sent"}
    seen = reconcile(smtp_server, state)
    assert len(seen.delivered) == MESSAGES
    assert set(seen.twice) <= state.lease_expired
    # Both workers held batches at the kill; only the dead one's are taken over.
    assert state.lease_expired <= at_kill.leased
    assert len(state.lease_expired) <= HELD
    assert seen.extra <= DUPLICATES, f"{seen.extra} duplicates"
    assert took < RECOVERY, f"the survivor took {took:.1f}s to deliver everything"


STOP_HEARTBEAT = "2"
"""Seconds: a short heartbeat timeout, so the takeover of the paused worker comes quickly."""


def in_transaction(admin_url: str, application_name: str) -> bool:
    """Whether a backend of ``application_name`` is inside a transaction (holding row locks)."""
    engine = sqlalchemy.create_engine(admin_url)
    try:
        with engine.connect() as connection:
            busy = connection.execute(
                sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND (state LIKE 'idle in transaction%' OR state = 'active')"
                ),
                {"name": application_name},
            ).scalar_one()
    finally:
        engine.dispose()
    return bool(busy)


def first_beat(url: str) -> datetime:
    """The last heartbeat of the worker that started first (the paused one)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(Worker.beat_at).order_by(Worker.started_at).limit(1)
            beat: datetime = connection.execute(query).scalar_one()
    finally:
        engine.dispose()
    return beat


def pause_outside_transactions(worker: subprocess.Popen[bytes], admin: str, name: str) -> None:
    """SIGSTOP ``worker`` at a moment it holds no PostgreSQL transaction open.

    Stopped inside one (its continuous outcome writer is in one most of the time), it
    would keep those rows locked, and nobody could take them over until it went on:
    PostgreSQL's own ``idle_in_transaction_session_timeout`` is the remedy for that, not
    the heartbeat. Tried again until a stop lands between transactions.
    """
    for _ in range(500):
        os.kill(worker.pid, signal.SIGSTOP)
        if not in_transaction(admin, name):
            return
        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the worker was always inside a transaction")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_paused_past_its_takeover_sends_nothing_when_continued(
    postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """SIGSTOP mid-send, a second worker takes everything over and sends it, SIGCONT: the
    first worker's fence finds its messages gone and not one more mail leaves it.

    PostgreSQL only: a worker stopped inside a SQLite write transaction holds the
    database's one write lock, and nobody can take anything over until it goes on."""
    queue_due_messages(postgres_url, MESSAGES)
    settings = {"heartbeat_timeout": STOP_HEARTBEAT, "lease_seconds": str(LEASE_SECONDS)}
    name = f"notifier-paused-{uuid.uuid4().hex[:8]}"
    paused_url = with_application_name(postgres_url, name)
    logs = [tmp_path / "paused.log", tmp_path / "other.log"]
    paused = start(["worker"], worker_env(paused_url, smtp_server, **settings), tmp_path, logs[0])
    env = worker_env(postgres_url, smtp_server, **settings)
    other = None
    try:
        wait_until(lambda: len(smtp_server.received) >= MESSAGES // 5, 180, "a fifth of the mail")
        pause_outside_transactions(paused, postgres_url, name)
        stopped = time.monotonic()
        beat_at_stop = first_beat(postgres_url)
        at_stop = outbox_state(postgres_url)
        assert at_stop.leased, "stopped while holding nothing: nothing to prove"
        other = start(["worker"], env, tmp_path, logs[1])
        wait_until(lambda: count_sent(postgres_url) == MESSAGES, 120, f"{MESSAGES} messages sent")
        # Past the lease too: the paused worker's leases and its heartbeat are both stale.
        time.sleep(max(0.0, LEASE_SECONDS + 1 - (time.monotonic() - stopped)))
        before = len(smtp_server.received)
        os.kill(paused.pid, signal.SIGCONT)
        # Running again: its next claim or renewal writes its heartbeat row.
        wait_until(lambda: first_beat(postgres_url) > beat_at_stop, 30, "the worker to go on")
        time.sleep(1.0)  # what it would send, it sends at once: give it a moment to show
        assert len(smtp_server.received) == before, "the continued worker sent mail"
        graceful_stop(paused, logs[0])
        assert len(smtp_server.received) == before, "the continued worker sent mail on its stop"
    finally:
        if paused.poll() is None:
            os.kill(paused.pid, signal.SIGCONT)
            graceful_stop(paused, logs[0])
        if other is not None:
            graceful_stop(other, logs[1])
    state = outbox_state(postgres_url)
    assert set(state.status.values()) == {"sent"}
    seen = reconcile(smtp_server, state)
    assert len(seen.delivered) == MESSAGES
    assert at_stop.leased <= state.lease_expired
    assert set(seen.twice) <= state.lease_expired


GRACEFUL_MESSAGES = 400
GRACEFUL_BATCH = 100


def test_sigterm_finishes_sends_in_flight_and_gives_back_the_rest(tmp_path: Path) -> None:
    """A slow server keeps sends in flight at the signal; after it nothing stays leased.

    The batch (100) is far larger than the sends under way at once (8), so a stop that
    sent the whole batch before exiting would leave nothing ``released`` and take seconds.
    """
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    queue_due_messages(url, GRACEFUL_MESSAGES)
    server = FaultySmtpServer(Faults(delay=0.3)).start()
    try:
        env = worker_env(
            url, server, batch_size=str(GRACEFUL_BATCH), lease_seconds=str(LEASE_SECONDS)
        )
        first_log = tmp_path / "first.log"
        first = start(["worker"], env, tmp_path, first_log)
        try:
            wait_until(lambda: len(server.received) >= 10, 120, "the first mails")
        finally:
            took = graceful_stop(first, first_log)
        assert took < 20, f"the stop took {took:.1f}s"
        after_stop = outbox_state(url)
        assert not after_stop.leased
        assert after_stop.released, "the unsent part of the batch was not handed back"
        sent = after_stop.with_status("sent")
        assert sent and set(message_id_counts(server).values()) == {1}
        assert {after_stop.by_message_id[key] for key in message_id_counts(server)} == sent
        assert "worker.stopped" in first_log.read_text()

        server.faults.delay = 0
        second_log = tmp_path / "second.log"
        second = start(["worker"], env, tmp_path, second_log)
        try:
            wait_until(lambda: count_sent(url) == GRACEFUL_MESSAGES, 180, "every message sent")
        finally:
            graceful_stop(second, second_log)
        state = outbox_state(url)
        seen = reconcile(server, state)
        assert len(seen.delivered) == GRACEFUL_MESSAGES
        assert seen.twice == {}
        assert not state.lease_expired
        assert set(state.attempts.values()) == {1}
    finally:
        server.stop()


def render_processes_of(parent: int) -> list[int]:
    """The spawned render processes whose parent is ``parent``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == parent and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def test_a_killed_workers_render_processes_end_with_it(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """SIGKILL runs no cleanup; the render processes must not live on as orphans."""
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    queue_due_messages(url, 200)
    worker = start(
        ["worker"], worker_env(url, smtp_server, render_processes="2"), tmp_path, tmp_path / "log"
    )
    try:
        wait_until(lambda: len(smtp_server.received) >= 50, 120, "mail rendered in the pool")
        renderers = render_processes_of(worker.pid)
        assert len(renderers) == 2
    finally:
        kill(worker)
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in renderers),
        30,
        "the render processes to exit",
    )


@pytest.mark.parametrize("blow", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "stopped"])
def test_a_render_process_lost_mid_run_is_replaced_and_nothing_is_lost(
    tmp_path: Path, smtp_server: SmtpServer, blow: signal.Signals
) -> None:
    """Killed while idle or rendering, the pool breaks at once. Killed while writing its
    answer, or stopped, it never answers, and the render timeout notices. Either way a fresh
    pool takes over and the mail it held goes back to the queue.

    One process is killed; every process is stopped, since one stopped alone may hold no
    chunk (still booting, or between chunks) and the other would simply take all the work."""
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    queue_due_messages(url, GRACEFUL_MESSAGES)
    log = tmp_path / "worker.log"
    env = worker_env(url, smtp_server, render_processes="2", render_timeout="5")
    worker = start(["worker"], env, tmp_path, log)
    try:
        wait_until(lambda: len(smtp_server.received) >= 20, 120, "the first mails")
        processes = render_processes_of(worker.pid)
        for target in processes if blow == signal.SIGSTOP else processes[:1]:
            os.kill(target, blow)
        wait_until(lambda: count_sent(url) == GRACEFUL_MESSAGES, 180, "every message sent")
    finally:
        graceful_stop(worker, log)
    seen = reconcile(smtp_server, outbox_state(url))
    assert len(seen.delivered) == GRACEFUL_MESSAGES
    assert seen.twice == {}
    assert "render.pool_restarted" in log.read_text()
