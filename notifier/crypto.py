"""Encryption of personal data at rest, and keyed hashes for looking it up.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) is authenticated:
a tampered ciphertext fails to open instead of yielding garbage. Several keys
may be configured; the first encrypts and all decrypt, so keys can rotate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from notifier import errors


def new_key() -> str:
    """A fresh Fernet key, for ``NOTIFIER_ENCRYPTION_KEY``."""
    return Fernet.generate_key().decode("ascii")


class Sealer:
    """Seals and opens personal data; computes blind indexes for lookups."""

    def __init__(self, encryption_keys: list[str], index_key: str) -> None:
        if not encryption_keys:
            raise errors.ConfigurationError(
                "at least one encryption key is needed", variable="NOTIFIER_ENCRYPTION_KEY"
            )
        try:
            self._fernets = [Fernet(key.strip().encode("ascii")) for key in encryption_keys]
        except (ValueError, UnicodeEncodeError) as exc:
            raise errors.ConfigurationError(
                "each key must be 32 url-safe base64-encoded bytes (Fernet)",
                variable="NOTIFIER_ENCRYPTION_KEY",
            ) from exc
        self._multi = MultiFernet(self._fernets)
        self._index_key = hashlib.sha256(b"notifier-blind-index:" + index_key.encode()).digest()

    def seal(self, plain: bytes) -> bytes:
        return self._multi.encrypt(plain)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._multi.decrypt(sealed)
        except InvalidToken as exc:
            raise _undecryptable() from exc

    def seal_text(self, plain: str) -> bytes:
        return self.seal(plain.encode("utf-8"))

    def open_text(self, sealed: bytes) -> str:
        return self.open(sealed).decode("utf-8")

    def seal_json(self, value: Any) -> bytes:
        return self.seal(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    def open_json(self, sealed: bytes) -> Any:
        return json.loads(self.open(sealed))

    def needs_rotation(self, sealed: bytes) -> bool:
        """True when ``sealed`` was not encrypted with the first (current) key."""
        try:
            self._fernets[0].decrypt(sealed)
        except InvalidToken:
            return True
        return False

    def rotate(self, sealed: bytes) -> bytes:
        """``sealed`` re-encrypted with the first key."""
        try:
            return self._multi.rotate(sealed)
        except InvalidToken as exc:
            raise _undecryptable() from exc

    def blind_index(self, email: str) -> str:
        """A keyed hash of a normalised address: equal addresses match, the address stays hidden."""
        normalised = email.strip().lower().encode("utf-8")
        digest = hmac.new(self._index_key, normalised, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _undecryptable() -> errors.ConfigurationError:
    """Stored data no configured key opens: a key was dropped too early, or the data was altered."""
    return errors.ConfigurationError(
        "stored data cannot be decrypted with the configured keys",
        variable="NOTIFIER_ENCRYPTION_KEY",
    )
