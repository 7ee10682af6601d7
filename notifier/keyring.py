"""Where the signing and encryption keys come from.

In production both are settings (comma-separated, newest first). On the
embedded SQLite default they may be left unset: then they are generated once
and kept in ``notifier.keys`` beside the database, and the log says so.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from notifier import crypto, errors
from notifier.settings import Settings, generate_secret

log = logging.getLogger(__name__)
KEYS_FILE = "notifier.keys"


@dataclass(frozen=True)
class Keys:
    secret_keys: list[str]
    encryption_keys: list[str]


def resolve(settings: Settings, *, create: bool = True) -> Keys:
    """The configured keys, or the development keys file on SQLite.

    Without ``create`` a missing keys file is not written: the keys are then
    made up for this process alone, which suits a command that reads no
    sealed data (``notifier status``) and must leave the disk as it was.
    """
    secret = _split(settings.secret_key)
    encryption = _split(settings.encryption_key)
    if secret and encryption:
        return Keys(secret, encryption)
    if not settings.is_sqlite:
        missing = "NOTIFIER_SECRET_KEY" if not secret else "NOTIFIER_ENCRYPTION_KEY"
        raise errors.ConfigurationError(f"{missing} is required with PostgreSQL", variable=missing)
    path = settings.data_dir / KEYS_FILE
    stored = _load_or_create(path) if create or path.exists() else _new_keys()
    return Keys(secret or [stored["secret_key"]], encryption or [stored["encryption_key"]])


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _load_or_create(path: Path) -> dict[str, str]:
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    keys = _new_keys()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(keys, handle)
    log.warning(
        "keys.generated path=%s: development keys; set NOTIFIER_SECRET_KEY and "
        "NOTIFIER_ENCRYPTION_KEY in production",
        path,
    )
    return keys


def _new_keys() -> dict[str, str]:
    return {"secret_key": generate_secret(), "encryption_key": crypto.new_key()}
