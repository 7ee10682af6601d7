"""Subscriber import: N rows of NDJSON with consent proof → customers, preferences, proofs.

A child process writes the file first (not timed). Another child builds the
engine and imports the file through ``Notifier.import_subscribers`` (read,
checked row by row with the intake's schema, written a chunk at a time), then
imports it again (nothing to change: the idempotent path); it reports both
times and its peak RSS. The baseline is the same rows written by the store
functions alone, in a third child on a fresh database: the customers' upsert,
the preferences and the consent proofs in chunks of the same size, from rows
already in memory, with neither parsing nor checking.

Four rows in five carry proof; the rest are imported unconfirmed (no mail).

Run a child directly: ``python -m bench.subscriber_import write|import|store FILE DB N``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import PROJECT_DIR, fresh_dir

AT = "2024-03-01T12:00:00+01:00"


@dataclass(frozen=True)
class Imported:
    rows: int
    imported: int
    seconds: float
    again_seconds: float
    peak_mb: float
    store_seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def again_rate(self) -> float:
        return self.rows / self.again_seconds

    @property
    def store_rate(self) -> float:
        return self.rows / self.store_seconds


def run(rows: int) -> Imported:
    folder = fresh_dir("subscriber-import")
    file = folder / "subscribers.ndjson"
    _child("write", file, folder / "unused.db", rows)
    imported = _child("import", file, folder / "notifier.db", rows)
    stored = _child("store", file, folder / "store.db", rows)
    return Imported(
        rows,
        imported["imported"],
        imported["seconds"],
        imported["again_seconds"],
        imported["hwm_kb"] / 1024,
        stored["seconds"],
    )


def _child(step: str, file: Path, database: Path, rows: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.subscriber_import",
            step,
            str(file),
            str(database),
            str(rows),
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import {step} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def row(n: int) -> dict[str, Any]:
    found: dict[str, Any] = {
        "customer": {
            "id": f"OLD{n:07d}",
            "email": f"lezer{n}@example.nl",
            "first_name": "Lezer",
            "locale": ("nl", "en", "nl_BE")[n % 3],
            "tags": ["auto"] if n % 2 else [],
        }
    }
    if n % 5:
        found["consent"] = {
            "at": AT,
            "source": "signup_form",
            "ip": f"203.0.113.{n % 250}",
            "text_version": "laposta-2024",
        }
    return found


def _write(file: Path, rows: int) -> dict[str, Any]:
    with file.open("w", encoding="utf-8") as out:
        for n in range(rows):
            out.write(json.dumps(row(n)) + "\n")
    return {"written": rows, "bytes": file.stat().st_size}


def _engine(database: Path) -> Any:
    from bench import workload
    from notifier.service import Notifier

    engine = Notifier(workload.settings(f"sqlite:///{database}", 25, render_processes=0))
    engine.upgrade_database()
    return engine


def _hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _import(file: Path, database: Path) -> dict[str, Any]:
    from notifier.usecases import subscriber_import

    engine = _engine(database)
    timings = []
    answers = []
    for _ in range(2):
        start = time.perf_counter()
        with file.open(encoding="utf-8") as lines:
            answers.append(engine.import_subscribers(subscriber_import.ndjson_rows(lines)))
        timings.append(time.perf_counter() - start)
    engine.close()
    first = answers[0]
    if first.errors or answers[1].errors:
        raise RuntimeError(f"rows refused: {first.errors[:3]}")
    return {
        "imported": first.imported,
        "confirmed": first.confirmed,
        "seconds": timings[0],
        "again_seconds": timings[1],
        "hwm_kb": _hwm_kb(),
    }


def _store(file: Path, database: Path) -> dict[str, Any]:
    """The floor: the store's bulk writes for the same rows, nothing read or checked."""
    from notifier.store import customers, preferences
    from notifier.usecases import subscriber_import

    engine = _engine(database)
    with file.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    at = datetime.fromisoformat(AT).astimezone(UTC)
    start = time.perf_counter()
    chunk = subscriber_import.CHUNK
    for offset in range(0, len(rows), chunk):
        part = rows[offset : offset + chunk]
        now = datetime.now(UTC)
        with engine.database.transaction() as session:
            customers.upsert_all(
                session,
                engine.sealer,
                [
                    customers.Details(
                        r["customer"]["id"],
                        r["customer"]["email"],
                        None,
                        r["customer"]["locale"],
                        now,
                        first_name=r["customer"]["first_name"],
                        tags=r["customer"]["tags"],
                    )
                    for r in part
                ],
            )
            proved = [r for r in part if "consent" in r]
            preferences.set_first_choices(
                session, [r["customer"]["id"] for r in proved], "newsletter", True, "import", now
            )
            preferences.record_consents(
                session,
                engine.sealer,
                [
                    preferences.Proof(
                        r["customer"]["id"],
                        "newsletter",
                        r["consent"]["source"],
                        r["consent"]["ip"],
                        r["consent"]["text_version"],
                        at,
                    )
                    for r in proved
                ],
            )
    seconds = time.perf_counter() - start
    engine.close()
    return {"seconds": seconds}


def main() -> None:
    step, file, database, rows = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    if step == "write":
        result = _write(file, rows)
    elif step == "import":
        result = _import(file, database)
    elif step == "store":
        result = _store(file, database)
    else:
        raise SystemExit(f"unknown step {step!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
