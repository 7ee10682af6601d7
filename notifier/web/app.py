"""The ASGI application: API, pages and, in ``serve``, the scheduler in its lifespan."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

import notifier
from notifier import settings
from notifier.runtime import lifecycle, logconfig
from notifier.runtime.metrics import CONTENT_TYPE
from notifier.service import Notifier
from notifier.web import (
    api,
    apidocs,
    auth,
    campaigns_api,
    errors,
    event_docs,
    inbox,
    logs,
    openapi,
    pages,
    post_event,
    proxies,
    readiness,
    security,
    subscribers_api,
)
from notifier.web.limits import BodyLimit
from notifier.web.ratelimit import PublicRateLimit

STATIC_DIR = Path(__file__).parent / "static"


class App(FastAPI):
    """FastAPI whose OpenAPI document has the bearer scheme (enforced by middleware), tags,
    error answers and the per-type event schemas."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            document = super().openapi()
            auth.document(document)
            openapi.document(document)
            event_docs.document(document, self.state.notifier.settings)
        return super().openapi()


def from_environment() -> FastAPI:
    """The app of one ``serve --workers`` process, with an engine of its own.

    uvicorn spawns each process and calls this there. ``serve`` has migrated
    the database first and put the API tokens, the log level and the render
    processes' share of the cores into the environment.
    """
    config = settings.load()
    logconfig.configure(os.environ.get(logconfig.LEVEL_VARIABLE, "INFO"), config.log_format)
    return create_app(Notifier(config), config.api_tokens, owns_engine=True)


def create_app(
    engine: Notifier,
    api_tokens: Sequence[str],
    *,
    run_worker: bool = True,
    owns_engine: bool = False,
) -> FastAPI:
    """The app for ``engine``; with ``run_worker`` it also runs the scheduler and sender.

    With ``owns_engine`` the app closes the engine when it shuts down; otherwise
    whoever made the engine does.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if not run_worker:
                yield
                return
            async with lifecycle.delivering(engine):
                yield
        finally:
            if owns_engine:
                engine.close()

    app = App(
        title="notifier",
        version=notifier.__version__,
        summary="Webshop customer email: events in, correct mail out.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.notifier = engine
    logs.install()
    errors.install(app)
    app.include_router(api.router(engine))
    app.include_router(campaigns_api.router(engine))
    app.include_router(subscribers_api.router(engine))
    app.include_router(pages.router(engine, engine.secret_key))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    apidocs.install(app)
    if engine.capture is not None:
        app.include_router(inbox.router(engine.capture.inbox, engine.failed_messages))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    ready = readiness.Readiness(engine)

    @app.get("/readyz", responses={503: {"description": "cannot write now"}})
    async def readyz() -> JSONResponse:
        """Readiness: 200 while the database takes a write, else 503 (the log says why)."""
        if await ready.check():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics: queue depth by status and category, deliveries, send latency."""
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE)

    # The last added is the outermost: security headers go on every answer, 401 and 413 too,
    # and a posted event meets authentication and the body limit before its short path.
    app.add_middleware(post_event.PostEvent, engine=engine)
    app.add_middleware(PublicRateLimit, limit=engine.settings.page_rate_limit)
    app.add_middleware(BodyLimit, paths={subscribers_api.PATH: subscribers_api.MAX_BODY})
    app.add_middleware(auth.BearerAuth, tokens=api_tokens)
    app.add_middleware(security.SecurityHeaders)
    app.add_middleware(proxies.TrustedProxies, networks=engine.settings.trusted_proxies)
    return app
