"""Per-customer data keys: made, unwrapped, cached, destroyed and re-wrapped.

A data key is a random Fernet key, stored in the key store
(``store.keystore``) wrapped by the master keys (``NOTIFIER_ENCRYPTION_KEY``),
and cached unwrapped in this process for a short while:

- for opening, ``READ_TTL`` seconds: another process's erasure may leave a
  destroyed key usable here for at most that long;
- for sealing, ``SEAL_TTL`` seconds: after that the key row is looked up
  again, so new data of a customer erased elsewhere goes under a fresh key
  (that the new row can open) rather than under the destroyed one.

An erasure in this process evicts the key at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from notifier import errors

READ_TTL = 60.0
SEAL_TTL = 2.0
CACHE_SIZE = 20_000


@dataclass(frozen=True)
class DataKey:
    """One customer's data key as the key store keeps it: wrapped by the master keys."""

    key_id: str
    owner: str
    wrapped: bytes


class KeyStore(Protocol):
    """The rows ``DataKeys`` needs; ``store.keystore.KeyStore`` keeps them in a database."""

    def fetch(self, key_ids: Collection[str]) -> list[DataKey]: ...
    def of_owner(self, owner: str) -> DataKey | None: ...
    def add(self, key: DataKey) -> DataKey: ...
    def destroy(self, owner: str) -> bool: ...
    def page(self, after: str | None, limit: int) -> list[DataKey]: ...
    def rewrap(self, key: DataKey, wrapped: bytes) -> bool: ...


@dataclass(frozen=True)
class _Cached:
    key_id: str
    fernet: Fernet
    at: float


class DataKeys:
    """The data keys of ``store``, wrapped with ``master`` (the first wraps, all unwrap)."""

    def __init__(
        self,
        store: KeyStore,
        master: list[Fernet],
        owner_key: bytes,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._first = master[0]
        self._master = MultiFernet(master)
        self._owner_key = hashlib.sha256(b"notifier-key-owner:" + owner_key).digest()
        self._now = now
        self._by_id: OrderedDict[str, _Cached] = OrderedDict()
        self._by_owner: dict[str, str] = {}

    def for_sealing(self, customer_id: str) -> tuple[str, Fernet]:
        """The customer's key id and key, made and stored (committed) if they have none."""
        owner = self.owner(customer_id)
        key_id = self._by_owner.get(owner)
        cached = self._fresh(key_id, SEAL_TTL) if key_id is not None else None
        if cached is not None:
            return cached.key_id, cached.fernet
        found = self.store.of_owner(owner)
        if found is None:
            fresh = Fernet.generate_key()
            found = self.store.add(
                DataKey(secrets.token_hex(16), owner, self._master.encrypt(fresh))
            )
        entry = self._remember(found)
        return entry.key_id, entry.fernet

    def for_opening(self, key_id: str) -> Fernet:
        """The key of ``key_id``; ``Shredded`` if it was destroyed."""
        cached = self._fresh(key_id, READ_TTL)
        if cached is None:
            self.preload([key_id])
            cached = self._fresh(key_id, READ_TTL)
        if cached is None:
            raise errors.Shredded("the data key of this data was destroyed (erasure)")
        return cached.fernet

    def preload(self, key_ids: Iterable[str]) -> None:
        """Fetch the keys among ``key_ids`` not fresh in the cache, in one query."""
        missing = {key_id for key_id in key_ids if self._fresh(key_id, READ_TTL) is None}
        for found in self.store.fetch(missing):
            self._remember(found)

    def destroy(self, customer_id: str) -> bool:
        """Delete the customer's key from the store (committed) and from this process's cache."""
        owner = self.owner(customer_id)
        key_id = self._by_owner.pop(owner, None)
        if key_id is not None:
            self._by_id.pop(key_id, None)
        return self.store.destroy(owner)

    def rewrap(self, page_size: int) -> int:
        """Wrap every data key with the first master key; returns the keys re-wrapped."""
        rewrapped = 0
        after: str | None = None
        while page := self.store.page(after, page_size):
            for key in page:
                if not self._wrapped_by_first(key.wrapped):
                    rewrapped += self.store.rewrap(key, self._master.rotate(key.wrapped))
            after = page[-1].key_id
        return rewrapped

    def owner(self, customer_id: str) -> str:
        """The key store's name for a customer: a keyed hash, not the id."""
        return hmac.new(self._owner_key, customer_id.encode(), hashlib.sha256).hexdigest()

    def _wrapped_by_first(self, wrapped: bytes) -> bool:
        try:
            self._first.decrypt(wrapped)
        except InvalidToken:
            return False
        return True

    def _fresh(self, key_id: str, ttl: float) -> _Cached | None:
        cached = self._by_id.get(key_id)
        return cached if cached is not None and self._now() - cached.at < ttl else None

    def _remember(self, key: DataKey) -> _Cached:
        try:
            fernet = Fernet(self._master.decrypt(key.wrapped))
        except InvalidToken as exc:
            raise errors.ConfigurationError(
                "a data key in the key store cannot be unwrapped with the configured keys",
                variable="NOTIFIER_ENCRYPTION_KEY",
            ) from exc
        entry = _Cached(key.key_id, fernet, self._now())
        self._by_id[key.key_id] = entry
        self._by_id.move_to_end(key.key_id)
        self._by_owner[key.owner] = key.key_id
        while len(self._by_id) > CACHE_SIZE:
            self._by_id.popitem(last=False)
        if len(self._by_owner) > CACHE_SIZE:
            self._by_owner = {o: k for o, k in self._by_owner.items() if k in self._by_id}
        return entry
