"""Crashes and stops of real ``notifier worker`` processes: nothing lost, duplicates bounded.

A worker killed with SIGKILL mid-batch leaves its batch leased. After the lease expires
another worker takes those messages over, records an attempt ``lease_expired`` for each, and
sends them: the ones the dead worker had already handed to the server arrive twice. So the
guarantee is at-least-once with duplicates bounded by what a worker holds, one batch being
sent and the next being rendered (``PIPELINE_DEPTH`` batches), every one of them on record.
A SIGTERM instead lets the sends in flight finish and gives the rest back: exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from notifier.delivery.dispatcher import PIPELINE_DEPTH
from tests.faults import (
    Faults,
    FaultySmtpServer,
    count_sent,
    graceful_stop,
    kill,
    message_id_counts,
    outbox_state,
    reconcile,
)
from tests.processes import notifier_env, start, wait_until
from tests.smtpd import SmtpServer
from tests.test_workers import queue_due_messages

MESSAGES = 5_000
BATCH = 50
HELD = PIPELINE_DEPTH * BATCH
"""The most one worker has leased at any moment."""
LEASE_SECONDS = 10
"""The smallest lease the settings allow, so a takeover happens within the test."""


def worker_env(url: str, server: SmtpServer, **extra: str) -> dict[str, str]:
    settings = {
        "database_url": url,
        "smtp_host": server.host,
        "smtp_port": str(server.port),
        "smtp_tls": "none",
        "poll_interval": "0.2",
        "batch_size": str(BATCH),
        "lease_seconds": str(LEASE_SECONDS),
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
def test_a_killed_worker_loses_nothing_and_its_duplicates_are_on_record(
    url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    queue_due_messages(url, MESSAGES)
    env = worker_env(url, smtp_server)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start(["worker"], env, tmp_path, first_log)
    try:
        wait_until(lambda: len(smtp_server.received) >= MESSAGES // 5, 180, "a fifth of the mail")
    finally:
        kill(first)
    at_kill = outbox_state(url)
    assert len(at_kill.leased) <= HELD  # what the dead worker held: its batches in flight
    assert at_kill.with_status("scheduled"), "killed too late: nothing left to prove"

    second = start(["worker"], env, tmp_path, second_log)
    try:
        wait_until(lambda: count_sent(url) == MESSAGES, 300, f"{MESSAGES} messages sent")
    finally:
        graceful_stop(second, second_log)

    state = outbox_state(url)
    assert set(state.status.values()) == {"sent"}
    seen = reconcile(smtp_server, state)
    assert len(seen.delivered) == MESSAGES
    # Every duplicate was taken over from the dead worker's lease, and says so in the log.
    assert set(seen.twice) <= state.lease_expired
    assert state.lease_expired == at_kill.leased
    assert seen.extra <= HELD
    assert set(seen.twice.values()) <= {2}


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_on_postgres_one_killed(
    postgres_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """The survivor takes over the dead worker's batch once its lease expires; no restart."""
    queue_due_messages(postgres_url, MESSAGES)
    env = worker_env(postgres_url, smtp_server)
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    victim, survivor = (start(["worker"], env, tmp_path, log) for log in logs)
    try:
        wait_until(lambda: len(smtp_server.received) >= MESSAGES // 5, 180, "a fifth of the mail")
        kill(victim)
        at_kill = outbox_state(postgres_url)
        wait_until(lambda: count_sent(postgres_url) == MESSAGES, 300, f"{MESSAGES} messages sent")
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
    assert seen.extra <= HELD


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
        env = worker_env(url, server, batch_size=str(GRACEFUL_BATCH))
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


def wait_until_running(pid: int, timeout: float = 60) -> None:
    """Until ``pid`` is on a CPU (state R): a render process is then making a chunk.

    An idle render process waits on its queue (state S) and holds no mail, so
    stopping it then would test nothing. A chunk takes tens of milliseconds,
    so this looks every millisecond rather than at ``wait_until``'s pace.
    """
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "R":
            return
        time.sleep(0.001)
    raise AssertionError(f"render process {pid} never rendered within {timeout}s")


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

    It is stopped while rendering: stopped idle, it holds nothing, and the other process
    takes all the work; the worker kills it when it stops."""
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    queue_due_messages(url, GRACEFUL_MESSAGES)
    log = tmp_path / "worker.log"
    env = worker_env(url, smtp_server, render_processes="2", render_timeout="5")
    worker = start(["worker"], env, tmp_path, log)
    try:
        wait_until(lambda: len(smtp_server.received) >= 20, 120, "the first mails")
        target = render_processes_of(worker.pid)[0]
        if blow == signal.SIGSTOP:
            wait_until_running(target)
        os.kill(target, blow)
        wait_until(lambda: count_sent(url) == GRACEFUL_MESSAGES, 180, "every message sent")
    finally:
        graceful_stop(worker, log)
    seen = reconcile(smtp_server, outbox_state(url))
    assert len(seen.delivered) == GRACEFUL_MESSAGES
    assert seen.twice == {}
    assert "render.pool_restarted" in log.read_text()
