"""Recovery: ``notifier serve`` SIGKILLed at full speed and restarted at once.

The queue holds ``count`` due messages of the workload mix; ``serve`` runs
with the default lease (60 s), heartbeat timeout (10 s), poll interval and
render processes, 8 SMTP connections and batches of 500 (``sink_env``).
Once a fifth of the mail has reached the sink the process is SIGKILLed and
a new one started in the same breath. Two figures per crash: the time from
the restart to an empty queue (nothing ``scheduled``, ``sending`` or
``retrying``), and the mails the sink received twice. The sink is an
aiosmtpd server in this process that counts Message-ID headers, so a
duplicate is a second copy of the same message, not a guess from the log.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from aiosmtpd.controller import Controller

from bench import workload
from bench.common import free_port, fresh_dir
from bench.processes import sink_env, start, stop
from bench.scaleout import POSTGRES, postgres_available
from notifier.service import Notifier

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
PENDING = "SELECT count(*) FROM messages WHERE status IN ('scheduled', 'sending', 'retrying')"
SENDING = "SELECT count(*) FROM messages WHERE status = 'sending'"
TAKEN_OVER = (
    "SELECT count(DISTINCT message_id) FROM delivery_attempts WHERE outcome = 'lease_expired'"
)


@dataclass(frozen=True)
class CrashRun:
    database: str
    count: int
    sending_at_kill: int
    """Messages ``sending`` (claimed by the dead process) at the kill."""
    taken_over: int
    """Messages with a ``lease_expired`` attempt: the possible duplicates, on record."""
    recovery: float
    """Seconds from the restart to an empty queue."""
    duplicates: int
    """Mails the sink received more than once (copies beyond the first)."""
    delivered: int
    """Distinct messages the sink received."""


class _Counting:
    """aiosmtpd handler: counts each message's Message-ID, 250 to all."""

    def __init__(self) -> None:
        self.seen: Counter[bytes] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = bytes(envelope.original_content or envelope.content)[:8192]
        found = _MESSAGE_ID.search(head)
        self.seen[found.group(1) if found else b"?"] += 1
        return "250 OK"


@contextmanager
def counting_sink() -> Iterator[tuple[int, _Counting]]:
    handler = _Counting()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL schema dropped afterwards; yields its URL."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'notifier.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def postgres_missing() -> str | None:
    return postgres_available()


def run(kind: str, count: int, *, kill_at: float = 0.2, timeout: float = 300) -> CrashRun:
    """One crash on ``kind`` ("sqlite" or "postgres"): queue, serve, SIGKILL, restart, drain."""
    folder = fresh_dir(f"recovery-{kind}")
    with counting_sink() as (port, sink), database(kind, folder) as url:
        engine = Notifier(workload.settings(url, port))
        engine.upgrade_database()
        workload.queue_due(engine, count)
        engine.close()
        env = sink_env(url, port)
        watcher = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        http = free_port()
        first = start(["serve", "--port", str(http)], env, folder, folder / "first.log")
        try:
            _wait(lambda: sum(sink.seen.values()) >= count * kill_at, timeout, first)
        finally:
            first.kill()
            first.wait()
        sending = _scalar(watcher, SENDING)
        restarted = time.perf_counter()
        second = start(["serve", "--port", str(http)], env, folder, folder / "second.log")
        try:
            _wait(lambda: _scalar(watcher, PENDING) == 0, timeout, second)
            recovery = time.perf_counter() - restarted
        finally:
            stop(second)
        taken_over = _scalar(watcher, TAKEN_OVER)
        watcher.dispose()
        time.sleep(0.5)  # the last 250s are answered before the rows are written, not after
        copies = sink.seen
        return CrashRun(
            kind,
            count,
            sending,
            taken_over,
            recovery,
            sum(copies.values()) - len(copies),
            len(copies),
        )


def _scalar(engine: sqlalchemy.Engine, query: str) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(query).scalar_one())


def _wait(condition: Any, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise RuntimeError("notifier serve exited early")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout} s")
        time.sleep(0.05)
