"""Signed link tokens: who, which category, which language; unforgeable and unalterable.

itsdangerous signs with HMAC-SHA256 and supports rotation: keys are given
newest first here (the first signs, all verify).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from notifier import errors

LINK_LIFETIME = timedelta(days=400)
"""Links in mail must keep working for at least a year."""

_PART = re.compile(r"[A-Za-z0-9_-]+")
PREFERENCES = "notifier.preferences"
CONFIRM = "notifier.newsletter-confirm"


@dataclass(frozen=True)
class Claims:
    """Who a link is for. ``generation`` is the customer's random token generation
    (``customers.token_generation``): a customer id erased and used again gets a new one, so
    the links mailed to the person before do not work for the new one. Empty for customers
    known before generations existed (their links, issued without one, keep working)."""

    customer_id: str
    category: str
    locale: str
    generation: str = ""


class Signer:
    """Issues and reads tokens for one purpose (``PREFERENCES`` or ``CONFIRM``)."""

    def __init__(self, secret_keys: list[str], purpose: str) -> None:
        if not secret_keys:
            raise errors.ConfigurationError(
                "a secret key is needed", variable="NOTIFIER_SECRET_KEY"
            )
        self._serializer = URLSafeTimedSerializer(
            list(reversed(secret_keys)),
            salt=purpose,
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def issue(self, claims: Claims) -> str:
        payload = [claims.customer_id, claims.category, claims.locale]
        if claims.generation:
            payload.append(claims.generation)
        return self._serializer.dumps(payload)

    def read(self, token: str, max_age: timedelta = LINK_LIFETIME) -> Claims:
        """The claims of a valid token; ``BadToken`` for anything forged, altered or expired."""
        if not _canonical(token):
            raise errors.BadToken("this link is not valid")
        try:
            payload = self._serializer.loads(token, max_age=int(max_age.total_seconds()))
        except BadData as exc:
            raise errors.BadToken("this link is not valid (any more)") from exc
        if not (
            isinstance(payload, list)
            and len(payload) in (3, 4)
            and all(isinstance(part, str) for part in payload)
            and (len(payload) == 3 or payload[3])
        ):
            raise errors.BadToken("this link is not valid")
        return Claims(*payload)


def check_generation(claims: Claims, generation: str | None) -> None:
    """``BadToken`` unless the link was issued to the customer's current generation.

    ``generation`` is the stored one (None for a customer from before generations existed).
    """
    if claims.generation != (generation or ""):
        raise errors.BadToken("this link belongs to no one (any more)")


def _canonical(token: str) -> bool:
    """True when every part of the token is in the one encoding ``issue`` produces.

    itsdangerous decodes base64 leniently (it skips stray characters and
    ignores unused bits), so an altered token could still verify; links must
    be exact or nothing.
    """
    parts = token.removeprefix(".").split(".")
    if len(parts) != 3:
        return False
    for part in parts:
        if not _PART.fullmatch(part):
            return False
        try:
            if base64_encode(base64_decode(part)) != part.encode():
                return False
        except (BadData, binascii.Error, ValueError):
            return False
    return True
