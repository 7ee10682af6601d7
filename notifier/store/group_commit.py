"""Group commit: concurrent writers share one transaction, so they share one fsync.

With ``synchronous=FULL`` every SQLite commit waits for the disk, and
concurrent ``BEGIN IMMEDIATE`` writers queue on the busy timeout's sleep loop;
one commit per event caps intake at a few hundred events per second. Here the
callers hand their work to one writer thread instead, which takes everything
pending and commits it together.

One bad item still fails alone, whatever the database says of it: the input
models refuse what a database cannot store (``notifier.storable``), and an
error they did not foresee (a value PostgreSQL refuses, a constraint broken)
costs the other items of its batch only a second try, never their answer.
A batch in which an item fails is done again with a savepoint per item; if
the failure came from the lookup that reads for all items at once
(``prepare``), each item's lookup is first tried alone, so that the items it
fails for are answered with their error and left out. The cost is bounded:
at most two transactions per batch, plus, only after a failed lookup, one
read-only transaction per item. The writer thread answers every item it
took and goes on, whatever an item raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from notifier import errors
from notifier.store.db import Database, Session

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")
DEFAULT_CAP = 256


@dataclass
class _Work(Generic[Item, Result]):
    item: Item
    future: Future[Result] = field(default_factory=Future)


class GroupCommit(Generic[Item, Result]):
    """One writer thread that applies what callers submit, many items per transaction.

    Contract of a batch: the writer takes everything pending (at most
    ``cap``, oldest first; sorted by ``order`` if given) and opens one
    transaction (``prepare`` and ``flush``, below, run around the items).
    For each item it calls ``apply(session, item)``; an exception there
    (``Duplicate`` for a unique-key race, or anything else) becomes that
    item's answer and undoes that item's writes only. A database outage
    (``ServiceUnavailable``) aborts the whole transaction instead, and so
    does a failing commit: then every item of the batch gets that error.
    After the commit returned, ``after_commit`` sees the results of the
    items that succeeded (once per batch), and only then is each caller's
    future resolved. Nothing is acknowledged before it is durable.

    How: the items first run one after the other with no savepoints (a
    SAVEPOINT and its RELEASE cost SQLAlchemy more than the rest of an
    event's statements together). If one of them raises, that transaction is
    rolled back and the batch is done again, each item in its own savepoint,
    so ``apply`` may run twice for an item and must do nothing but write
    through ``session`` (and log). Failing items are rare (an invalid event,
    a duplicate racing in from another process, a value the database
    refuses), so a batch costs at most twice its work and usually once.

    The thread starts with the first ``submit``; ``close`` lets it finish what
    was submitted before and joins it.

    ``prepare(session, items)``, if given, runs at the start of every
    transaction of a batch (so once more when it is redone, and nothing read
    or noted in the undone attempt stays), before any ``apply``: it reads
    with one query per kind what the items need (for intake, which event ids
    have an answer already, and the review pairs of their orders and
    customers) and leaves it in ``session.info`` for ``apply``. It must not
    write. If it raises for a batch of several, each item's ``prepare`` is
    tried alone in a transaction of its own: an item it raises for gets that
    error, and the others are done again without it (only if ``prepare``
    still raises for them together do they all get that error). What
    ``apply`` notes there of its own writes must go with them when its
    savepoint is undone.
    ``flush(session)``, if given, writes what ``apply`` left pending there
    (for intake, the rows of all the group's events in one executemany per
    table): after the last item, or, when a batch is redone, after each item
    in its savepoint. Its exception counts as the items' own: the batch is
    redone, and then it is the answer of the one item that left the rows.
    """

    def __init__(
        self,
        database: Database,
        apply: Callable[[Session, Item], Result],
        after_commit: Callable[[Sequence[Result]], None],
        *,
        cap: int = DEFAULT_CAP,
        name: str = "notifier-group-commit",
        order: Callable[[Item], str] | None = None,
        prepare: Callable[[Session, Sequence[Item]], None] | None = None,
        flush: Callable[[Session], None] | None = None,
    ) -> None:
        """``order``: a key the items of a batch are applied by (stably, so equal keys
        keep their arrival order). Writers in several processes then lock shared rows,
        such as one customer's, in the same order and cannot deadlock each other.
        """
        self.database = database
        self.apply = apply
        self.after_commit = after_commit
        self.order = order
        self.prepare = prepare
        self.flush = flush
        self.cap = cap
        self.name = name
        self._ready = threading.Condition()
        self._pending: list[_Work[Item, Result]] = []
        self._writing = 0
        self._closing = False
        self._thread: threading.Thread | None = None

    def submit(self, item: Item) -> Future[Result]:
        """Queue ``item`` for the next batch; the future resolves after its batch committed."""
        work: _Work[Item, Result] = _Work(item)
        with self._ready:
            if self._closing:
                raise errors.ServiceUnavailable("shutting down: not accepting new work")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._pending.append(work)
            self._ready.notify()
        return work.future

    @property
    def pending(self) -> int:
        """Items submitted and not yet taken into a batch."""
        with self._ready:
            return len(self._pending)

    @property
    def backlog(self) -> int:
        """Items submitted and not yet answered: pending plus the batch being written."""
        with self._ready:
            return len(self._pending) + self._writing

    def close(self) -> None:
        """Refuse new work, let the writer commit what is pending, and join it."""
        with self._ready:
            self._closing = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._closing:
                    self._ready.wait()
                if not self._pending:
                    return
                batch = self._pending[: self.cap]
                del self._pending[: self.cap]
                self._writing = len(batch)
            # A caller that gave up (an asyncio request cancelled) is skipped; past this
            # point its future can no longer be cancelled, so it always gets an answer.
            self._write([work for work in batch if work.future.set_running_or_notify_cancel()])
            with self._ready:
                self._writing = 0

    def _write(self, batch: list[_Work[Item, Result]]) -> None:
        """Write ``batch`` and answer each of its callers, whatever it raises."""
        if not batch:
            return
        try:
            if self.order is not None:
                key = self.order
                batch.sort(key=lambda work: key(work.item))
            outcomes = self._write_together(batch)
            if outcomes is None:
                outcomes = self._write_each(batch, {})
            elif isinstance(outcomes, _LookupFailed):
                outcomes = self._write_each(batch, self._look_up_alone(batch))
        except BaseException as exc:
            for work in batch:
                work.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        results = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
        try:
            self.after_commit(results)
        except Exception:
            # Committed already: the callers get their answers regardless.
            log.exception("intake.after_commit_failed batch=%d", len(batch))
        for work, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                work.future.set_exception(outcome)
            else:
                work.future.set_result(outcome)

    def _write_together(
        self, batch: list[_Work[Item, Result]]
    ) -> list[Result | BaseException] | _LookupFailed | None:
        """Apply the batch in one transaction, no savepoints: the outcomes, or how to redo it.

        An item's exception leaves ``transaction`` rolled back and translated
        (``Duplicate``, ``Unstorable``, ``ServiceUnavailable``). For a batch of
        one that is its answer; in a larger batch the others' writes went with
        it, so the batch must be done again item by item: None, or
        ``_LookupFailed`` if ``prepare`` raised. An outage, and a failing
        commit, are raised for the whole batch as in ``_write_each``.
        """
        outcomes: list[Result | BaseException] = []
        stage = "prepare"
        try:
            with self.database.transaction() as session:
                self._prepare(session, batch)
                stage = "apply"
                for work in batch:
                    outcomes.append(self.apply(session, work.item))
                self._flush(session)
                stage = "commit"
        except errors.ServiceUnavailable:
            raise
        except Exception as exc:
            if stage == "commit":
                raise
            if len(batch) == 1:
                return [exc]
            log.info("intake.batch_redone batch=%d error=%s", len(batch), type(exc).__name__)
            return _LookupFailed() if stage == "prepare" else None
        return outcomes

    def _look_up_alone(self, batch: list[_Work[Item, Result]]) -> dict[int, BaseException]:
        """After ``prepare`` failed for the batch: the items it fails for alone, with its error.

        Each item's lookup runs in a transaction of its own, which writes
        nothing; none takes locks in the batch's transaction, so the redo
        still takes them all at its start, in one order.
        """
        refused: dict[int, BaseException] = {}
        for index, work in enumerate(batch):
            try:
                with self.database.transaction() as session:
                    self._prepare(session, [work])
            except errors.ServiceUnavailable:
                raise
            except Exception as exc:
                refused[index] = exc
        log.info("intake.lookup_refused batch=%d refused=%d", len(batch), len(refused))
        return refused

    def _prepare(self, session: Session, batch: list[_Work[Item, Result]]) -> None:
        if self.prepare is not None:
            self.prepare(session, [work.item for work in batch])

    def _flush(self, session: Session) -> None:
        if self.flush is not None:
            self.flush(session)

    def _write_each(
        self, batch: list[_Work[Item, Result]], refused: dict[int, BaseException]
    ) -> list[Result | BaseException]:
        """Apply the batch but ``refused`` in one transaction, each item in its own savepoint.

        ``refused``: the answers of items left out (by their index in ``batch``).
        """
        outcomes: list[Result | BaseException] = []
        rest = [work for index, work in enumerate(batch) if index not in refused]
        if not rest:
            return [refused[index] for index in range(len(batch))]
        with self.database.transaction() as session:
            self._prepare(session, rest)
            for index, work in enumerate(batch):
                outcome: Result | BaseException
                if index in refused:
                    outcomes.append(refused[index])
                    continue
                try:
                    with self.database.savepoint(session):
                        outcome = self.apply(session, work.item)
                        self._flush(session)
                except errors.ServiceUnavailable:
                    raise
                except Exception as exc:
                    outcome = exc  # this item's answer; its savepoint is undone
                outcomes.append(outcome)
        return outcomes


class _LookupFailed:
    """``_write_together``'s verdict when ``prepare`` raised for a batch of several."""
