"""Campaign fan-out: confirmed subscribers → queued newsletter messages, time and peak memory.

The subscribers are bulk-inserted first (not timed) by one child process.
A second child does nothing but build the engine, create the campaign and
call ``engine.newsletters.advance()``; it reports the wall time of
``advance`` and its peak RSS (``VmHWM`` before and after, and
``ru_maxrss``), so neither the test data nor the parent's memory is counted.
The baseline is the floor for the same database work: one raw
``INSERT … SELECT`` of the same rows through sqlite3, in a third child, on a
copy of the same database.

The same is measured for a campaign to part of the subscribers
(``AUDIENCE``: a locale, a tag they must have and one they must not), on
another copy of the database, against the same ``INSERT … SELECT`` with the
audience's conditions written out.

Run a child directly: ``python -m bench.fanout prepare|advance|raw|advance-audience|raw-audience
DB N``.
"""

from __future__ import annotations

import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import PROJECT_DIR, fresh_dir

CHUNK = 50_000
CONTENT = {
    "title": "Winterklaar de weg op",
    "intro": "De nachten worden kouder. Met deze onderdelen kom je zorgeloos de winter door.",
    "items": [
        {
            "title": "Varta Blue Dynamic accu's",
            "text": "Een accu die bij vorst niet opgeeft.",
            "url": "https://www.winparts.example/accu",
            "price": "99.00",
            "currency": "EUR",
        }
    ],
}
SUBJECTS = {"nl": "Winterklaar de weg op", "en": "Ready for winter"}
LOCALES = ("nl", "en", "nl_BE")
AUDIENCE = {"locales": ["nl"], "tags_any": ["auto"], "tags_none": ["b2b"]}
"""Dutch speakers (``nl`` and ``nl_BE``) tagged ``auto`` and not ``b2b``: 4 in 15 subscribers."""
AUDIENCE_SQL = r"""
        AND (lower(replace(c.locale, '-', '_')) = 'nl'
             OR lower(replace(c.locale, '-', '_')) LIKE 'nl\_%' ESCAPE '\')
        AND c.tags LIKE '%|auto|%'
        AND coalesce(c.tags, '') NOT LIKE '%|b2b|%'
"""


def tags_of(n: int) -> str | None:
    """Every other subscriber is tagged ``auto``, every fifth ``b2b`` (as ``customers`` stores)."""
    tags = [tag for tag, every in (("auto", 2), ("b2b", 5)) if n % every == 0]
    return "|" + "".join(f"{tag}|" for tag in tags) if tags else None


@dataclass(frozen=True)
class FanOut:
    subscribers: int
    queued: int
    seconds: float
    rss_before_mb: float
    peak_mb: float
    raw_seconds: float
    raw_peak_mb: float
    raw_rows: int

    @property
    def rate(self) -> float:
        return self.queued / self.seconds


def run(subscribers: int, audience: bool = False) -> FanOut:
    """One fan-out to every subscriber, or (``audience``) to ``AUDIENCE``, and its baseline."""
    folder = fresh_dir("fanout-audience" if audience else "fanout")
    database = folder / "notifier.db"
    child("prepare", database, subscribers)
    copy = folder / "raw.db"
    shutil.copyfile(database, copy)
    suffix = "-audience" if audience else ""
    advanced = child(f"advance{suffix}", database, subscribers)
    raw = child(f"raw{suffix}", copy, subscribers)
    return FanOut(
        subscribers,
        advanced["queued"],
        advanced["seconds"],
        advanced["hwm_before_kb"] / 1024,
        advanced["hwm_after_kb"] / 1024,
        raw["seconds"],
        raw["hwm_after_kb"] / 1024,
        raw["queued"],
    )


def child(
    step: str, database: Path, subscribers: int, *extra: str, module: str = "bench.fanout"
) -> dict[str, Any]:
    """Run ``python -m module step DB N extra…`` and return the JSON of its last line."""
    done = subprocess.run(
        [sys.executable, "-m", module, step, str(database), str(subscribers), *extra],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {step} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def hwm_kb(pid: int | str = "self") -> int:
    """Peak resident set so far (VmHWM), in kB: what the kernel saw, allocator slack included."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def engine_for(database: Path, smtp_port: int = 25, **overrides: Any) -> Any:
    from bench import workload
    from notifier.service import Notifier

    return Notifier(
        workload.settings(
            f"sqlite:///{database}", smtp_port, send_window="00:00-24:00", **overrides
        )
    )


def _prepare(database: Path, subscribers: int) -> dict[str, Any]:
    """1 customer + 1 confirmed newsletter preference per subscriber, in bulk.

    Every customer gets the same sealed address (fan-out never opens it) but
    its own blind index, which the suppression join does read.
    """
    from sqlalchemy import insert

    from notifier.store.models import Customer, Preference

    engine = engine_for(database)
    engine.upgrade_database()
    now = datetime.now(UTC)
    sealed = engine.sealer.seal_text("lezer@example.nl")
    for offset in range(0, subscribers, CHUNK):
        numbers = range(offset, min(offset + CHUNK, subscribers))
        with engine.database.transaction() as session:
            session.execute(
                insert(Customer),
                [
                    {
                        "id": f"N{n:07d}",
                        "email": sealed,
                        "email_index": engine.sealer.blind_index(f"lezer{n}@example.nl"),
                        "name": None,
                        "locale": LOCALES[n % len(LOCALES)],
                        "tags": tags_of(n),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in numbers
                ],
            )
            session.execute(
                insert(Preference),
                [
                    {
                        "customer_id": f"N{n:07d}",
                        "category": "newsletter",
                        "enabled": True,
                        "source": "confirm_link",
                        "updated_at": now,
                    }
                    for n in numbers
                ],
            )
    engine.close()
    return {"prepared": subscribers}


def _advance(database: Path, audience: dict[str, Any] | None = None) -> dict[str, Any]:
    engine = engine_for(database)
    campaign = {"id": "bench-campaign", "subjects": SUBJECTS, "content": CONTENT}
    engine.newsletters.create(campaign | ({"audience": audience} if audience else {}))
    before = hwm_kb()
    start = time.perf_counter()
    queued = engine.newsletters.advance()
    seconds = time.perf_counter() - start
    engine.close()
    return {
        "queued": queued,
        "seconds": seconds,
        "hwm_before_kb": before,
        "hwm_after_kb": hwm_kb(),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _raw(database: Path, conditions: str = "") -> dict[str, Any]:
    """The same rows in one statement, no engine: the database's own floor for this work."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")  # notifier's own setting
    (stamp,) = connection.execute("SELECT updated_at FROM preferences LIMIT 1").fetchone()
    before = hwm_kb()
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    cursor = connection.execute(
        """
        INSERT INTO messages (id, customer_id, campaign_id, kind, category, status,
                              send_after, attempts, created_at, updated_at)
        SELECT 'raw-' || p.customer_id, p.customer_id, 'raw', 'newsletter', 'newsletter',
               'scheduled', ?, 0, ?, ?
        FROM preferences p
        JOIN customers c ON c.id = p.customer_id
        LEFT JOIN suppressions s ON s.email_index = c.email_index
        WHERE p.category = 'newsletter' AND p.enabled AND s.email_index IS NULL
        """
        + conditions
        + """
        ORDER BY p.customer_id
        """,
        (stamp, stamp, stamp),
    )
    rows = cursor.rowcount
    connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return {"queued": rows, "seconds": seconds, "hwm_before_kb": before, "hwm_after_kb": hwm_kb()}


def main() -> None:
    step, database, subscribers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if step == "prepare":
        result = _prepare(database, subscribers)
    elif step == "advance":
        result = _advance(database)
    elif step == "raw":
        result = _raw(database)
    elif step == "advance-audience":
        result = _advance(database, AUDIENCE)
    elif step == "raw-audience":
        result = _raw(database, AUDIENCE_SQL)
    else:
        raise SystemExit(f"unknown step {step!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
