"""Signed link tokens: who, which category, which language; unforgeable and unalterable.

itsdangerous signs with HMAC-SHA256 and supports rotation: keys are given
newest first here (the first signs, all verify).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadData, URLSafeTimedSerializer

from notifier import errors

LINK_LIFETIME = timedelta(days=400)
"""Links in mail must keep working for at least a year."""

PREFERENCES = "notifier.preferences"
CONFIRM = "notifier.newsletter-confirm"


@dataclass(frozen=True)
class Claims:
    customer_id: str
    category: str
    locale: str


class Signer:
    """Issues and reads tokens for one purpose (``PREFERENCES`` or ``CONFIRM``)."""

    def __init__(self, secret_keys: list[str], purpose: str) -> None:
        if not secret_keys:
            raise errors.ConfigurationError("a secret key is needed", variable="NOTIFIER_SECRET_KEY")
        self._serializer = URLSafeTimedSerializer(
            list(reversed(secret_keys)), salt=purpose, signer_kwargs={"digest_method": hashlib.sha256}
        )

    def issue(self, claims: Claims) -> str:
        return self._serializer.dumps([claims.customer_id, claims.category, claims.locale])

    def read(self, token: str, max_age: timedelta = LINK_LIFETIME) -> Claims:
        """The claims of a valid token; ``BadToken`` for anything forged, altered or expired."""
        try:
            payload = self._serializer.loads(token, max_age=int(max_age.total_seconds()))
        except BadData as exc:
            raise errors.BadToken("this link is not valid (any more)") from exc
        if not (
            isinstance(payload, list)
            and len(payload) == 3
            and all(isinstance(part, str) for part in payload)
        ):
            raise errors.BadToken("this link is not valid")
        return Claims(*payload)
