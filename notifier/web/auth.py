"""Bearer-token authentication for the shop backend's API."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="One of NOTIFIER_API_TOKENS")


def token_matches(candidate: str, tokens: Sequence[str]) -> bool:
    """Compare against every token in constant time, so timing reveals nothing."""
    given = candidate.encode()
    matches = [hmac.compare_digest(given, token.encode()) for token in tokens]
    return any(matches)


def require_token(tokens: Sequence[str]) -> Callable[..., None]:
    """A dependency that answers 401 unless a configured bearer token is presented."""

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if credentials is None or not token_matches(credentials.credentials, tokens):
            raise HTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    return check
