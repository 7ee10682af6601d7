"""The write probe behind ``/readyz``: can the database take a write right now?"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, update

from notifier.store.db import Database
from notifier.store.models import Readiness

_ROW = 1


def probe(database: Database, now: datetime) -> None:
    """Rewrite the one readiness row on a new connection and commit.

    A real write, not a ``SELECT 1``: a read-only file, a full disk, a
    read-only PostgreSQL session or a server that is down all fail it, and
    raise ``ServiceUnavailable`` with the driver's reason. One small row
    per probe, so probing every few seconds costs next to nothing.
    """
    with database.probe() as connection:
        rewritten = connection.execute(
            update(Readiness).where(Readiness.id == _ROW).values(checked_at=now)
        )
        if rewritten.rowcount == 0:  # the migration wrote the row; someone deleted it
            connection.execute(insert(Readiness).values(id=_ROW, checked_at=now))
