"""Security headers on every answer: no framing, no referrer (tokens live in URLs), strict CSP.

A route that must be framed (the dev inbox's mail view) sets its own policy and
``X-Frame-Options``, which this leaves alone.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_RAW = [
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in HEADERS.items()
]


class SecurityHeaders:
    """Adds ``HEADERS`` to responses that do not set their own policy.

    Works on the raw header pairs (names lower-case, as the ASGI server and
    Starlette send them) with the values encoded once, since every answer
    passes through here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                present = {name.lower() for name, _ in headers}
                missing = [pair for pair in _RAW if pair[0] not in present]
                if missing:
                    message["headers"] = [*headers, *missing]
            await send(message)

        await self.app(scope, receive, with_headers)
