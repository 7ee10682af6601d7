"""The app in the test's own process, spoken to over httpx's ASGI transport.

No socket and no server thread: for tests of what the API answers. Tests that
need real HTTP (keep-alive, uvicorn's own errors, a browser) use ``served``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from notifier import Notifier
from notifier.web.app import create_app

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def api_client(
    engine: Notifier,
    *,
    authorized: bool = False,
    base_url: str = "http://test",
    raise_app_exceptions: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``engine``'s app, sending the API token on every request if ``authorized``."""
    app = create_app(engine, [TOKEN], run_worker=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    headers = AUTH if authorized else None
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers) as client:
        yield client
