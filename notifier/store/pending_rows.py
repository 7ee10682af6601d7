"""Intake's rows of one group-commit transaction, waiting to be written together.

An executemany costs SQLAlchemy a third of a statement a row, so the events,
customers and messages a group accepts are held here and written per table.
The state lives in ``session.info``: ``begin`` puts it there for a
transaction, ``of`` finds it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from notifier.crypto import Sealer
from notifier.store import customers, events, outbox

_KEY = "notifier.pending_rows"


@dataclass
class PendingRows:
    """Intake's state in one transaction of a group commit (in ``session.info``).

    ``answers``: the answers of event ids seen before the group, from one
    query, and of those written in it since. The rows of the events accepted
    since the last ``write`` wait here with their answers, to be written
    together: an executemany costs SQLAlchemy a third of a statement a row.
    Deferring them is safe because intake reads none of them back but the
    answers (kept here) and the outbox (written out before it is read).
    """

    answers: dict[str, dict[str, Any]]
    new_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[events.Record] = field(default_factory=list)
    details: list[customers.Details] = field(default_factory=list)
    queued: list[tuple[outbox.NewMessage, datetime]] = field(default_factory=list)

    def answer(self, event_id: str) -> dict[str, Any] | None:
        """The answer this event id got already, before the group or earlier in it."""
        earlier = self.answers.get(event_id)
        return earlier if earlier is not None else self.new_answers.get(event_id)

    def add(
        self,
        event: events.Record,
        customer: customers.Details,
        queued: list[tuple[outbox.NewMessage, datetime]],
    ) -> None:
        self.records.append(event)
        self.details.append(customer)
        self.queued += queued
        self.new_answers[event.id] = event.response

    def write(self, session: Session, sealer: Sealer) -> None:
        """Write the pending rows: events first, customers in order, then messages.

        Whether this succeeds or fails, nothing stays pending; only on success
        do the new answers join ``answers`` (a failure undoes the rows).
        """
        try:
            events.record_all(session, self.records)
            customers.upsert_all(session, sealer, self.details)
            outbox.add_queued(session, sealer, self.queued)
            self.answers.update(self.new_answers)
        finally:
            self.new_answers.clear()
            self.records.clear()
            self.details.clear()
            self.queued.clear()


def begin(session: Session, event_ids: Sequence[str]) -> None:
    """Start this transaction's rows with the answers of ``event_ids`` seen before, in one query.

    A redone group starts a new transaction and so asks again.
    """
    session.info[_KEY] = PendingRows(events.answers(session, list(event_ids)))


def of(session: Session) -> PendingRows:
    """The rows ``begin`` started in this transaction."""
    rows: PendingRows = session.info[_KEY]
    return rows
