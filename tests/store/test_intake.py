"""``GroupCommit``'s two ways of writing a batch: together, and item by item after a failure.

(``test_intake_batching`` covers what callers see; this covers how a batch is written.)
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import sqlalchemy

from notifier import errors
from notifier.store import events
from notifier.store.db import Database, Session
from notifier.store.group_commit import GroupCommit
from tests.conftest import record_event


class Writer:
    """A GroupCommit that records events by id; ``poison…`` ids fail after writing.

    The first item holds the writer until ``open`` so the items submitted meanwhile
    form the next batch. Counts every ``apply`` call, and the savepoints and commits
    each batch took (``written``).
    """

    def __init__(
        self,
        database: Database,
        order: Callable[[str], str] | None = None,
        prepare: Callable[[Session, Sequence[str]], None] | None = None,
        flush: Callable[[Session], None] | None = None,
    ) -> None:
        self.database = database
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.applied: Counter[str] = Counter()
        self.batches: list[list[str]] = []
        self.written: list[tuple[int, int]] = []
        self.savepoints = [0]
        self.commits = [0]
        sqlalchemy.event.listen(database.engine, "savepoint", self._count(self.savepoints))
        sqlalchemy.event.listen(database.engine, "commit", self._count(self.commits))
        self.group: GroupCommit[str, str] = GroupCommit(
            database, self._apply, self._committed, order=order, prepare=prepare, flush=flush
        )

    def _committed(self, results: Any) -> None:
        self.batches.append(list(results))
        self.written.append((self.savepoints[0], self.commits[0]))
        self.savepoints[0] = self.commits[0] = 0

    @staticmethod
    def _count(counter: list[int]) -> Any:
        def counted(*_args: Any) -> None:
            counter[0] += 1

        return counted

    def _apply(self, session: Session, item: str) -> str:
        self.applied[item] += 1
        if item == "plug":
            self.entered.set()
            assert self.opened.wait(timeout=30)
        record_event(session, item, {"id": item})
        if item.startswith("poison"):
            raise RuntimeError(f"{item} breaks after writing")
        session.info.setdefault("unflushed", []).append(item)
        return item

    def one_batch(self, items: list[str]) -> list[str]:
        """Submit ``items`` while the writer is held, so they are written as one batch."""
        plug = self.group.submit("plug")
        assert self.entered.wait(timeout=30)
        futures = [self.group.submit(item) for item in items]
        self.opened.set()
        assert plug.result(timeout=30) == "plug"
        return [_outcome(future) for future in futures]

    def stored(self) -> set[str]:
        with self.database.transaction() as session:
            ids = ["plug", *self.applied]
            return {item for item in ids if events.answer(session, item) is not None}


def _outcome(future: Future[str]) -> str:
    error = future.exception(timeout=30)
    return type(error).__name__ if error else future.result()


def test_a_batch_without_failures_is_written_once_with_no_savepoints(database: Database) -> None:
    writer = Writer(database)
    try:
        outcomes = writer.one_batch(["a", "b", "c"])
    finally:
        writer.group.close()
    assert outcomes == ["a", "b", "c"]
    assert writer.written == [(0, 1), (0, 1)]
    assert writer.applied == Counter({"plug": 1, "a": 1, "b": 1, "c": 1})
    assert writer.batches == [["plug"], ["a", "b", "c"]]


def test_a_failing_item_has_the_batch_redone_with_a_savepoint_each(database: Database) -> None:
    writer = Writer(database)
    try:
        outcomes = writer.one_batch(["a", "poison-1", "b", "a"])
    finally:
        writer.group.close()
    assert outcomes == ["a", "RuntimeError", "b", "Duplicate"]
    # Together up to the poison (rolled back), then item by item: one savepoint each.
    assert writer.applied == Counter({"plug": 1, "a": 3, "poison-1": 2, "b": 1})
    assert writer.written == [(0, 1), (4, 1)]
    assert writer.batches == [["plug"], ["a", "b"]]
    assert writer.stored() == {"plug", "a", "b"}


def test_a_batch_of_one_failing_item_is_not_redone(database: Database) -> None:
    writer = Writer(database)
    try:
        outcomes = writer.one_batch(["poison-1"])
        duplicate = _outcome(writer.group.submit("plug"))
        after = writer.group.submit("d").result(timeout=30)
    finally:
        writer.group.close()
    assert outcomes == ["RuntimeError"]
    assert duplicate == "Duplicate"  # translated as in a savepoint
    assert after == "d"
    assert writer.applied == Counter({"plug": 2, "poison-1": 1, "d": 1})
    # Each batch of one: the plug, the poison and the duplicate (rolled back, nothing to
    # commit), then "d".
    assert writer.written == [(0, 1), (0, 0), (0, 0), (0, 1)]
    assert writer.batches == [["plug"], [], [], ["d"]]
    assert writer.stored() == {"plug", "d"}


def test_an_item_raising_service_unavailable_fails_the_whole_batch(database: Database) -> None:
    def apply(session: Session, item: str) -> str:
        record_event(session, item, {})
        if item == "down":
            raise errors.ServiceUnavailable("database unavailable")
        return item

    group: GroupCommit[str, str] = GroupCommit(database, apply, lambda results: None)
    try:
        assert _outcome(group.submit("down")) == "ServiceUnavailable"
        assert group.submit("up").result(timeout=30) == "up"
    finally:
        group.close()
    with database.transaction() as session:
        assert events.answer(session, "down") is None


def test_a_batch_is_applied_in_key_order_keeping_arrival_order_for_equal_keys(
    database: Database,
) -> None:
    """The same order in every process: two writers cannot lock one customer's rows crosswise."""
    writer = Writer(database, order=lambda item: item.split("-")[0])
    items = ["c-1", "a-1", "c-2", "b-1", "a-2"]
    assert writer.one_batch(items) == items
    assert writer.batches[-1] == ["a-1", "a-2", "b-1", "c-1", "c-2"]


def test_prepare_sees_each_transaction_of_a_batch_before_its_items(database: Database) -> None:
    prepared: list[tuple[list[str], Counter[str]]] = []

    def prepare(session: Session, items: Sequence[str]) -> None:
        prepared.append((list(items), writer.applied.copy()))

    writer = Writer(database, prepare=prepare)
    try:
        outcomes = writer.one_batch(["a", "poison-1", "b"])
    finally:
        writer.group.close()
    assert outcomes == ["a", "RuntimeError", "b"]
    # The plug's batch; this batch together (up to the poison); the redo, before any item.
    assert prepared == [
        (["plug"], Counter()),
        (["a", "poison-1", "b"], Counter({"plug": 1})),
        (["a", "poison-1", "b"], Counter({"plug": 1, "a": 1, "poison-1": 1})),
    ]


def test_a_failing_prepare_fails_only_the_item_it_fails_for(database: Database) -> None:
    def prepare(session: Session, items: Sequence[str]) -> None:
        if "bad" in items:
            raise RuntimeError("cannot read")

    writer = Writer(database, prepare=prepare)
    try:
        outcomes = writer.one_batch(["a", "bad"])
        after = writer.group.submit("c").result(timeout=30)
    finally:
        writer.group.close()
    # The batch's lookup is tried again item by item: only "bad" fails it (issue 16.7).
    assert outcomes == ["a", "RuntimeError"]
    assert after == "c"
    assert writer.stored() == {"plug", "a", "c"}


def flushing(database: Database) -> tuple[Writer, list[list[str]]]:
    """A Writer whose items wait in ``session.info`` for its flush; ``late…`` ones fail there."""
    flushed: list[list[str]] = []

    def flush(session: Session) -> None:
        items = session.info.pop("unflushed", [])
        flushed.append(items)
        if any(item.startswith("late") for item in items):
            raise RuntimeError("the pending writes of a late item fail")

    return Writer(database, flush=flush), flushed


def test_flush_follows_the_last_item_of_a_batch(database: Database) -> None:
    writer, flushed = flushing(database)
    try:
        assert writer.one_batch(["a", "b"]) == ["a", "b"]
    finally:
        writer.group.close()
    assert flushed == [["plug"], ["a", "b"]]


def test_in_a_redo_flush_follows_each_item_in_its_savepoint(database: Database) -> None:
    writer, flushed = flushing(database)
    try:
        outcomes = writer.one_batch(["c", "late-1", "d"])
    finally:
        writer.group.close()
    assert outcomes == ["c", "RuntimeError", "d"]
    # The batch's flush failed, so it was redone item by item.
    assert flushed == [["plug"], ["c", "late-1", "d"], ["c"], ["late-1"], ["d"]]
    assert writer.stored() == {"plug", "c", "d"}
