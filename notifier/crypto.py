"""Encryption of personal data at rest, and keyed hashes for looking it up.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) is authenticated:
a tampered ciphertext fails to open instead of yielding garbage. Several master
keys may be configured; the first encrypts and all decrypt, so keys can rotate.

With a key store, data that belongs to a customer (``owner``) is sealed with
that customer's own data key (``notifier.datakeys``), as
``k1.<key id>.<fernet token>``: erasure destroys the key, and every copy of
the data, backups included, stops opening (``errors.Shredded``). A token
without the prefix is sealed with the master keys: data of no customer, and
data written before data keys (``notifier keys rotate`` moves it under them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from notifier import errors
from notifier.datakeys import DataKeys, KeyStore

PREFIX = b"k1."
"""Marks a token sealed with a data key: ``k1.<key id>.<fernet token>``."""


def new_key() -> str:
    """A fresh Fernet key, for ``NOTIFIER_ENCRYPTION_KEY``."""
    return Fernet.generate_key().decode("ascii")


class Sealer:
    """Seals and opens personal data; computes blind indexes for lookups."""

    def __init__(
        self,
        encryption_keys: list[str],
        index_key: str,
        keystore: KeyStore | None = None,
        seconds: Callable[[], float] = time.monotonic,
    ) -> None:
        """``seconds`` times the data key cache (``notifier.datakeys``)."""
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
        self.data_keys = (
            DataKeys(keystore, self._fernets, index_key.encode(), seconds)
            if keystore is not None
            else None
        )

    def seal(self, plain: bytes, owner: str | None = None) -> bytes:
        """``plain`` sealed with ``owner``'s data key (a customer id), or the master key."""
        if owner is None or self.data_keys is None:
            return self._multi.encrypt(plain)
        key_id, fernet = self.data_keys.for_sealing(owner)
        return PREFIX + key_id.encode("ascii") + b"." + fernet.encrypt(plain)

    def open(self, sealed: bytes) -> bytes:
        """The plain data; ``Shredded`` when its data key was destroyed."""
        if sealed.startswith(PREFIX):
            key_id, token = _split(sealed)
            try:
                return self._data_key(key_id).decrypt(token)
            except InvalidToken as exc:
                raise _undecryptable() from exc
        try:
            return self._multi.decrypt(sealed)
        except InvalidToken as exc:
            raise _undecryptable() from exc

    def preload(self, tokens: Iterable[bytes | None]) -> None:
        """Fetch the data keys of ``tokens`` in one query, before opening them one by one."""
        if self.data_keys is not None:
            self.data_keys.preload(
                {_split(token)[0] for token in tokens if token and token.startswith(PREFIX)}
            )

    def seal_text(self, plain: str, owner: str | None = None) -> bytes:
        return self.seal(plain.encode("utf-8"), owner)

    def open_text(self, sealed: bytes) -> str:
        return self.open(sealed).decode("utf-8")

    def seal_json(self, value: Any, owner: str | None = None) -> bytes:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return self.seal(encoded, owner)

    def open_json(self, sealed: bytes) -> Any:
        return json.loads(self.open(sealed))

    def open_remaining_text(self, sealed: bytes | None) -> str | None:
        """The text, or None for none and for data whose key was destroyed (an erased past)."""
        try:
            return self.open_text(sealed) if sealed else None
        except errors.Shredded:
            return None

    def open_remaining_json(self, sealed: bytes | None) -> Any:
        """The value, or None for none and for data whose key was destroyed (an erased past)."""
        try:
            return self.open_json(sealed) if sealed else None
        except errors.Shredded:
            return None

    def reseal(self, sealed: bytes, owner: str | None) -> bytes | None:
        """``sealed`` as ``notifier keys rotate`` leaves it; None when it stays as it is.

        Data-key tokens stay (rotation re-wraps their keys instead); master-key
        tokens of a customer move under the customer's data key; the others
        are re-encrypted with the first master key if another one sealed them.
        """
        if sealed.startswith(PREFIX):
            return None
        if owner is not None and self.data_keys is not None:
            return self.seal(self.open(sealed), owner)
        return self.rotate(sealed) if self.needs_rotation(sealed) else None

    def needs_rotation(self, sealed: bytes) -> bool:
        """True when ``sealed`` was not encrypted with the first (current) master key."""
        if sealed.startswith(PREFIX):
            return False
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

    def _data_key(self, key_id: str) -> Fernet:
        if self.data_keys is None:
            raise errors.ConfigurationError(
                "data sealed with a data key needs the key store", variable="NOTIFIER_KEYSTORE_URL"
            )
        return self.data_keys.for_opening(key_id)


def _split(sealed: bytes) -> tuple[str, bytes]:
    """A data-key token's key id and its Fernet token."""
    key_id, _, token = sealed[len(PREFIX) :].partition(b".")
    return key_id.decode("ascii", "replace"), token


def _undecryptable() -> errors.ConfigurationError:
    """Stored data no configured key opens: a key was dropped too early, or the data was altered."""
    return errors.ConfigurationError(
        "stored data cannot be decrypted with the configured keys",
        variable="NOTIFIER_ENCRYPTION_KEY",
    )
