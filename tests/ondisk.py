"""What lies on disk: the database and key store bytes as someone holding the files reads them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from notifier.service import Notifier
from tests.conftest import POSTGRES_URL


def sqlite_bytes(engine: Notifier) -> bytes:
    path = Path(engine.settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def keystore_bytes(engine: Notifier) -> bytes:
    """The key store's files (its database and WAL), for a SQLite key store."""
    path = engine.keystore.sqlite_file
    assert path is not None
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def postgres_dump(url: str, *schemas: str) -> bytes:
    assert POSTGRES_URL
    schema = url.split("search_path%3D", 1)[1]
    names = [f"--schema={schema}{suffix}" for suffix in ("", *schemas)]
    return subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", *names, "test"],
        check=True,
        capture_output=True,
    ).stdout


def stored_bytes(engine: Notifier) -> bytes:
    """The database and the key store as they lie on disk (PostgreSQL: as pg_dump gives them)."""
    url = engine.settings.database_url
    if url.startswith("sqlite"):
        return sqlite_bytes(engine) + keystore_bytes(engine)
    return postgres_dump(url, "_keys")
