"""Rate limits on the public token endpoints, so nobody can hammer them from one address.

Uses the ``limits`` library's moving window in memory: per process, which
suits one ``serve`` per host; put a shared limiter in the proxy for more.
"""

from __future__ import annotations

import json

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from notifier.clock import SystemClock

PUBLIC_PREFIXES = ("/unsubscribe/", "/preferences/", "/confirm/")


def _limited(scope: Scope) -> bool:
    """Token pages are limited, except unsubscribe POSTs.

    Mailbox providers send one-click unsubscribes from a few shared servers;
    limiting those by address would drop real unsubscribes, and a forged
    token costs one HMAC check to refuse.
    """
    path: str = scope["path"]
    if not path.startswith(PUBLIC_PREFIXES):
        return False
    return not (scope["method"] == "POST" and path.startswith("/unsubscribe/"))


class PublicRateLimit:
    """Answers 429 with Retry-After once an address exceeds ``limit`` (e.g. ``120/minute``)."""

    def __init__(self, app: ASGIApp, limit: str) -> None:
        self.app = app
        self._limit = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _limited(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if self._limiter.hit(self._limit, "public", address):
            await self.app(scope, receive, send)
            return
        reset = self._limiter.get_window_stats(self._limit, "public", address).reset_time
        retry_after = max(1, int(reset - SystemClock().now().timestamp()))
        body = json.dumps(
            {"error": "rate_limited", "message": "too many requests", "fields": {}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
