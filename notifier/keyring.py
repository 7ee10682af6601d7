"""Where the signing and encryption keys come from, and where they may not.

In production (a real SMTP host) the keys come from the settings
(``NOTIFIER_SECRET_KEY``, ``NOTIFIER_ENCRYPTION_KEY``: comma-separated, newest
first) or from a keys file that ``NOTIFIER_KEY_FILE`` names outside the
database's folder: a copy of that folder (a backup, a stolen disk) must not
carry the key that opens it. Only development mode on SQLite may generate
``notifier.keys`` beside the database, and every start says so.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from notifier import crypto, errors
from notifier.settings import Settings, generate_secret

log = logging.getLogger(__name__)
KEYS_FILE = "notifier.keys"
KEY_FILE_VARIABLE = "NOTIFIER_KEY_FILE"
_FIELDS = ("secret_key", "encryption_key")


@dataclass(frozen=True)
class Keys:
    secret_keys: list[str]
    encryption_keys: list[str]


def resolve(settings: Settings, *, create: bool = True) -> Keys:
    """The configured keys, those of ``NOTIFIER_KEY_FILE``, or development keys on SQLite.

    Without ``create`` a missing development keys file is not written: the
    keys are then made up for this process alone, which suits a command that
    reads no sealed data (``notifier status``) and must leave the disk as it
    was. With ``create``, production refuses keys beside the database.
    """
    secret = _split(settings.secret_key)
    encryption = _split(settings.encryption_key)
    if secret and encryption:
        return Keys(secret, encryption)
    if settings.key_file is not None:
        return _keys(_read_key_file(settings.key_file, settings), secret, encryption)
    missing = "NOTIFIER_SECRET_KEY" if not secret else "NOTIFIER_ENCRYPTION_KEY"
    if not settings.is_sqlite:
        raise errors.ConfigurationError(
            f"{missing} is required with PostgreSQL (or a keys file in {KEY_FILE_VARIABLE})",
            variable=missing,
        )
    if settings.production and create:
        raise errors.ConfigurationError(
            f"{missing}: a real SMTP host (NOTIFIER_SMTP_HOST) needs the keys from the "
            f"environment or from {KEY_FILE_VARIABLE} outside the database's folder, "
            f"not {KEYS_FILE} beside the database",
            variable=missing,
        )
    path = settings.data_dir / KEYS_FILE
    if not create and not path.exists():
        return _keys(_new_keys(), secret, encryption)
    generated = not path.exists()
    stored = _read(path) if not generated else _write_new(path)
    if create:
        log.warning(
            "keys.development path=%s generated=%s: keys beside the database, for development "
            "only; production needs NOTIFIER_SECRET_KEY and NOTIFIER_ENCRYPTION_KEY or %s "
            "outside the database's folder",
            path,
            str(generated).lower(),
            KEY_FILE_VARIABLE,
        )
    return _keys(stored, secret, encryption)


def write_new(path: Path) -> None:
    """A fresh keys file at ``path`` (never over one), 0600, in a folder made 0700 if missing."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(path)
    except FileExistsError as exc:
        raise errors.NotifierError(f"{path} exists already; it is never overwritten") from exc


def inside_database_folder(path: Path, settings: Settings) -> bool:
    """Whether ``path`` lies in the SQLite database's folder (or below it)."""
    database = settings.sqlite_path
    return database is not None and path.resolve().is_relative_to(database.resolve().parent)


def _read_key_file(path: Path, settings: Settings) -> dict[str, str]:
    """The keys of ``NOTIFIER_KEY_FILE``; refused beside the database, missing, or malformed."""
    if inside_database_folder(path, settings):
        raise errors.ConfigurationError(
            f"{KEY_FILE_VARIABLE}: {path} is inside the database's folder; keep the keys "
            "where a copy of the data does not reach",
            variable=KEY_FILE_VARIABLE,
        )
    try:
        stored = _read(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a keys file"
        raise errors.ConfigurationError(
            f"{KEY_FILE_VARIABLE}: cannot read {path}: {reason} "
            "(`notifier keys new PATH` writes one)",
            variable=KEY_FILE_VARIABLE,
        ) from exc
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("keys.file_open_to_others path=%s: make it readable by its owner only", path)
    return stored


def _read(path: Path) -> dict[str, str]:
    stored = json.loads(path.read_text())
    if not isinstance(stored, dict) or not all(
        isinstance(stored.get(field), str) and _split(stored[field]) for field in _FIELDS
    ):
        raise ValueError(f"expected {' and '.join(_FIELDS)}")
    return {field: stored[field] for field in _FIELDS}


def _write_new(path: Path) -> dict[str, str]:
    keys = _new_keys()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(keys, handle)
    return keys


def _keys(stored: dict[str, str], secret: list[str], encryption: list[str]) -> Keys:
    return Keys(
        secret or _split(stored["secret_key"]), encryption or _split(stored["encryption_key"])
    )


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _new_keys() -> dict[str, str]:
    return {"secret_key": generate_secret(), "encryption_key": crypto.new_key()}
