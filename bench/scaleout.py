"""Scale-out: the same due backlog on PostgreSQL drained by 1, 2 and 4 ``notifier worker``s.

Each configuration gets a fresh schema (dropped afterwards) and the same
messages. Workers are started as subprocesses pointed at the schema with
``options=-csearch_path``; the benchmark polls the count of ``sent`` rows.
Two figures per configuration: the wall time from spawning the workers to
the last message sent (what an operator waits), and the rate from the
moment every worker has logged ``worker.started`` (interpreter start-up and
imports, a few seconds on a loaded box, excluded). Not from the first
``sent`` row: outcomes are written per batch of 500, so that count moves in
steps and would flatter many workers.
This machine has two cores; past two workers, more processes can only add
concurrency on the database and the sink, not CPU. The workers render in a
thread (``NOTIFIER_RENDER_PROCESSES=0``) so that each is one process on one
core and the figure shows how workers share the queue; one more run gives a
single worker its default render processes, which already use every core.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy

from bench import workload
from bench.common import fresh_dir
from bench.processes import sink_env, start, stop
from bench.sinks import Sink
from notifier.service import Notifier

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class ScaleRun:
    workers: int
    count: int
    wall: float
    steady: float
    sent: int

    @property
    def wall_rate(self) -> float:
        return self.sent / self.wall


def postgres_available(url: str = POSTGRES) -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # any failure means: skip, and say why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def run(
    sink: Sink,
    workers: int,
    count: int,
    render_processes: int | None = 0,
    url: str = POSTGRES,
    timeout: float = 900,
) -> ScaleRun:
    """Drain ``count`` messages with ``workers`` workers; ``render_processes`` None: the default."""
    folder = fresh_dir(f"scaleout-{workers}")
    with fresh_schema(sink, url) as schema_url:
        engine = Notifier(workload.settings(schema_url, sink.port))
        workload.queue_due(engine, count)
        engine.close()
        return _drain(folder, schema_url, sink.port, workers, count, render_processes, timeout)


@contextmanager
def fresh_schema(sink: Sink, url: str = POSTGRES) -> Iterator[str]:
    """A new, migrated schema in ``url``'s database, dropped afterwards; yields its URL."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    schema_url = f"{url}?options=-csearch_path%3D{schema}"
    try:
        engine = Notifier(workload.settings(schema_url, sink.port))
        engine.upgrade_database()
        engine.close()
        yield schema_url
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _drain(
    folder: Path,
    url: str,
    port: int,
    workers: int,
    count: int,
    render_processes: int | None,
    timeout: float,
) -> ScaleRun:
    rendering = {} if render_processes is None else {"render_processes": render_processes}
    env = sink_env(url, port, poll_interval="0.2", **rendering)
    watcher = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    query = sqlalchemy.text(
        "SELECT count(*) FILTER (WHERE status = 'sent'),"
        " count(*) FILTER (WHERE status IN ('scheduled', 'sending', 'retrying')) FROM messages"
    )
    spawned = time.perf_counter()
    processes = [start(["worker"], env, folder, folder / f"worker{n}.log") for n in range(workers)]
    logs = [folder / f"worker{n}.log" for n in range(workers)]
    ready: tuple[float, int] | None = None
    sent = 0
    try:
        deadline = spawned + timeout
        while time.perf_counter() < deadline:
            with watcher.connect() as connection:
                sent, pending = connection.execute(query).one()
            now = time.perf_counter()
            if ready is None and all("worker.started" in log.read_text() for log in logs):
                ready = (now, sent)
            if pending == 0:
                break
            time.sleep(0.1)
        done = time.perf_counter()
    finally:
        for process in processes:
            stop(process)
        watcher.dispose()
    ready_at, sent_when_ready = ready or (spawned, 0)
    steady = (sent - sent_when_ready) / max(done - ready_at, 1e-9)
    return ScaleRun(workers, count, done - spawned, steady, sent)
