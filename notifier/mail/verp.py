"""VERP envelope senders: ``bounce+<ref>-<signature>@<bounce domain>``, one per message.

A bounce goes back to the envelope sender, so an address that names the
message tells notifier which mail bounced without parsing anything. ``ref``
is the hex digest that also makes the message's Message-ID (``compose``), so
it leaks nothing of the outbox id; the signature (HMAC-SHA256, cut to 80
bits) lets the bounce listener refuse forged addresses at RCPT, before any
database lookup. Everything is lowercase hex: relays may fold the case of a
local part. The local part is 60 characters, under SMTP's 64.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from notifier import errors

PREFIX = "bounce+"
_SIGNATURE_BYTES = 10
_LOCAL = re.compile(r"bounce\+([0-9a-f]{32})-([0-9a-f]{20})")


class VerpSigner:
    """Issues and reads VERP addresses; keys are newest first (the first signs, all verify)."""

    def __init__(self, secret_keys: list[str], domain: str) -> None:
        if not secret_keys:
            raise errors.ConfigurationError(
                "a secret key is needed", variable="NOTIFIER_SECRET_KEY"
            )
        self.domain = domain.strip().lower()
        self._keys = [
            hashlib.sha256(b"notifier.verp:" + key.encode()).digest() for key in secret_keys
        ]

    def address(self, ref: str) -> str:
        """The envelope sender for the message whose Message-ID digest is ``ref``."""
        return f"{PREFIX}{ref}-{self._sign(self._keys[0], ref)}@{self.domain}"

    def read(self, address: str) -> str:
        """The ``ref`` a valid VERP address names; ``BadToken`` for any other address."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        match = _LOCAL.fullmatch(local)
        if match is None or domain != self.domain:
            raise errors.BadToken("not a bounce address of this notifier")
        ref, signature = match.groups()
        if not any(hmac.compare_digest(self._sign(key, ref), signature) for key in self._keys):
            raise errors.BadToken("not a bounce address of this notifier")
        return ref

    @staticmethod
    def _sign(key: bytes, ref: str) -> str:
        return hmac.new(key, ref.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES].hex()
