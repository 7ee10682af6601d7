"""The heartbeat rows of the processes that send mail: who is alive, who died holding mail.

Each sending process beats (rewrites its row) in every claim and while it
holds messages. A row older than the heartbeat timeout names a dead
process; ``outbox.lease_due`` takes its leased messages over at once. A
process that stops cleanly deletes its row, and a process that never wrote
one (or whose row is gone) loses its messages only when their lease ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Select, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from notifier.store.models import Worker

_workers = cast(Table, Worker.__table__)


def beat(session: Session, worker: str, now: datetime) -> None:
    """Say that ``worker`` is alive at ``now``: its row is written, or created on the first beat."""
    rewritten = session.execute(update(_workers).where(_workers.c.id == worker).values(beat_at=now))
    if not getattr(rewritten, "rowcount", 0):
        session.execute(insert(_workers).values(id=worker, started_at=now, beat_at=now))


def leave(session: Session, worker: str) -> None:
    """``worker`` stops cleanly, holding nothing: its row goes."""
    session.execute(delete(_workers).where(_workers.c.id == worker))


def forget(session: Session, beat_before: datetime) -> int:
    """Delete the rows of workers silent since before ``beat_before`` (long dead); how many."""
    result = session.execute(delete(_workers).where(_workers.c.beat_at < beat_before))
    return int(getattr(result, "rowcount", 0) or 0)


def dead(beat_before: datetime) -> Select[tuple[str]]:
    """The ids of workers whose last beat was before ``beat_before``, as a subquery to use."""
    return select(_workers.c.id).where(_workers.c.beat_at < beat_before)


def alive(session: Session, beat_since: datetime) -> list[str]:
    """The workers that beat at or after ``beat_since``, by id."""
    return list(session.scalars(select(_workers.c.id).where(_workers.c.beat_at >= beat_since)))
