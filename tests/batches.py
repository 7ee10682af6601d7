"""Deterministic intake batches, no mocks: a held write lock makes callers pile up as one group."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy

from notifier.schemas import EventIn
from notifier.service import Accepted, Notifier
from tests.conftest import customer, event
from tests.processes import wait_until


@contextmanager
def write_lock(url: str, table: str = "events") -> Iterator[None]:
    """Another connection holds the write lock on ``table`` until the block ends.

    SQLite has one write lock, for the whole database.
    """
    if url.startswith("sqlite"):
        raw = sqlite3.connect(sqlalchemy.make_url(url).database or "", isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            raw.execute("ROLLBACK")
            raw.close()
        return
    locker = sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)
    try:
        with locker.begin() as connection:
            connection.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        locker.dispose()


@dataclass
class Caller:
    """A thread calling ``handle_event`` once; keeps its answer or its error."""

    engine: Notifier
    body: dict[str, Any] | EventIn
    answer: Accepted | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._call)
        self.thread.start()

    def _call(self) -> None:
        try:
            self.answer = self.engine.handle_event(self.body)
        except BaseException as exc:  # the test inspects it
            self.error = exc

    def join(self) -> Caller:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self


def one_batch(
    engine: Notifier, url: str, bodies: Sequence[dict[str, Any] | EventIn], locked: str = "events"
) -> list[Caller]:
    """Run ``bodies`` from one thread each so that they are committed as one batch.

    The batch before them waits for ``locked``, the table whose lock holds it up.
    """
    with write_lock(url, locked):
        plug = Caller(engine, event("order.placed", id="evt-plug", customer=customer(id="CP")))
        wait_until(lambda: engine.intake.backlog == 1 and engine.intake.pending == 0, 10, "plug")
        callers = [Caller(engine, body) for body in bodies]
        wait_until(lambda: engine.intake.pending == len(bodies), 10, "all callers queued")
    answer = plug.join().answer
    assert answer is not None and answer.created
    return [caller.join() for caller in callers]
