"""Bearer-token authentication for the shop backend's API (``/v1``).

Checked in middleware, before any body is read, so an unauthenticated caller
learns nothing (not even whether its JSON parses). ``document`` declares the
scheme in the OpenAPI document: a route dependency would say the same, but
FastAPI would solve it on every request only to have it ignored.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from notifier.web import asgi

API_PREFIX = "/v1/"
FEEDBACK_PREFIX = "/v1/feedback/"
"""Providers' webhooks: they cannot send our bearer token and prove themselves their own way."""
SCHEME_NAME = "HTTPBearer"
SCHEME = {"type": "http", "scheme": "bearer", "description": "One of NOTIFIER_API_TOKENS"}


def document(openapi: dict[str, Any]) -> None:
    """Declare the bearer scheme in an OpenAPI document and require it on every /v1 operation."""
    components = openapi.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME_NAME] = SCHEME
    for path, operations in openapi.get("paths", {}).items():
        if path.startswith(API_PREFIX) and not path.startswith(FEEDBACK_PREFIX):
            for operation in operations.values():
                operation["security"] = [{SCHEME_NAME: []}]


def token_matches(candidate: str, tokens: Sequence[str]) -> bool:
    """Compare against every token in constant time, so timing reveals nothing."""
    given = candidate.encode()
    matches = [hmac.compare_digest(given, token.encode()) for token in tokens]
    return any(matches)


class BearerAuth:
    """Answers 401 for ``/v1`` requests without one of ``tokens``."""

    def __init__(self, app: ASGIApp, tokens: Sequence[str]) -> None:
        self.app = app
        self._tokens = list(tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path.startswith(API_PREFIX) and not path.startswith(FEEDBACK_PREFIX):
            header = (asgi.header(scope, b"authorization") or b"").decode("latin-1")
            kind, _, token = header.partition(" ")
            if kind.lower() != "bearer" or not token_matches(token.strip(), self._tokens):
                await _unauthorized(send)
                return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = json.dumps(
        {"error": "unauthorized", "message": "a valid bearer token is required", "fields": {}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b"Bearer"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
