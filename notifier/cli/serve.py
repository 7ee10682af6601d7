"""``notifier serve`` and ``notifier worker``: the two ways to run the engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import tempfile
from collections.abc import Iterator
from typing import Any

import click

from notifier import settings
from notifier.cli.common import Refusal, engine_for, ensure_schema, load, log
from notifier.mail.pool import default_processes
from notifier.runtime import eventloop, logconfig, metrics
from notifier.service import Notifier


def _ensure_mail(engine: Notifier) -> None:
    """Refuse to start an engine that would accept events it cannot turn into mail."""
    problems = engine.preflight()
    if problems:
        more = len(problems) - 1
        also = f" (and {more} more: `notifier templates check` lists them)" if more else ""
        raise Refusal(f"cannot make mail, not starting: {problems[0]}{also}")


def _started_engine(config: settings.Settings) -> Notifier:
    """The engine ``serve`` and ``worker`` run: its mail compiles, its schema is current."""
    engine = engine_for(config)
    _ensure_mail(engine)
    ensure_schema(engine)
    if config.insecure_base_url:
        log.warning(
            "settings.base_url_not_https variable=NOTIFIER_BASE_URL reason=%s",
            json.dumps("one-click unsubscribe (RFC 8058) needs https links for real mail"),
        )
    return engine


def _notice(config: settings.Settings, text: str, **style: Any) -> None:
    """A word to whoever starts ``serve``: coloured on the terminal, or a JSON log line."""
    if config.log_format == "json":
        log.warning(text)
    else:
        click.secho(text, err=True, **style)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="NOTIFIER_SERVE_WORKERS",
    help="Processes sharing the port, each with its own sender (also NOTIFIER_SERVE_WORKERS).",
)
def serve(host: str, port: int, workers: int) -> None:
    """Run the API, the pages, the scheduler and the sender; --workers runs several of each."""
    import uvicorn

    from notifier.web.app import create_app

    config = served_at(load(), host, port)
    engine = _started_engine(config)
    tokens = config.api_tokens
    if not tokens:
        tokens = [secrets.token_urlsafe(24)]
        _notice(config, f"No NOTIFIER_API_TOKENS set; this run's API token is: {tokens[0]}")
    if engine.capture is not None:
        _notice(
            config,
            f"DEVELOPMENT MODE: no NOTIFIER_SMTP_HOST, mail is captured at "
            f"http://{host}:{port}/dev/inbox and never delivered.",
            fg="yellow",
            bold=True,
        )
    if workers > 1 and config.is_sqlite:
        _notice(
            config,
            "--workers on SQLite: the processes take turns at its one write lock, so events "
            "are accepted no faster than by one; PostgreSQL is how serve scales out.",
            fg="yellow",
        )
    # "auto" picks uvloop and httptools (both dependencies, as in uvicorn[standard]) over
    # asyncio and h11: about half the CPU per request.
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "auto",
        "http": "auto",
        "access_log": config.access_log,
        # uvicorn believes X-Forwarded-For from any loopback peer; web.proxies decides instead.
        "proxy_headers": False,
    }
    log_config = logconfig.uvicorn_config(config.log_format)
    if log_config is not None:  # else uvicorn's own, for text
        options["log_config"] = log_config
    if workers == 1:
        uvicorn.run(create_app(engine, tokens), log_level="info", **options)
        return
    # Each spawned process builds its own engine from the environment (web.app.from_environment),
    # so what this process decided goes there: the token, the log level, the render share.
    engine.close()
    os.environ["NOTIFIER_API_TOKENS"] = ",".join(tokens)
    os.environ["NOTIFIER_BASE_URL"] = config.base_url
    os.environ[logconfig.LEVEL_VARIABLE] = logging.getLevelName(logging.getLogger().level)
    if config.render_processes is None:
        os.environ["NOTIFIER_RENDER_PROCESSES"] = str(default_processes(sharing=workers))
    with _shared_metrics():
        uvicorn.run(
            "notifier.web.app:from_environment",
            factory=True,
            workers=workers,
            log_level="info",
            **options,
        )


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """A folder where the processes of ``serve --workers N`` keep their counters, for /metrics.

    A scrape reaches one of the processes; with the counters in files there,
    it reports them all (see ``notifier.runtime.metrics``). A folder set by the
    operator is used, and kept; one made here goes when ``serve`` ends.
    """
    if os.environ.get(metrics.MULTIPROCESS_VARIABLE):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="notifier-metrics-") as folder:
        os.environ[metrics.MULTIPROCESS_VARIABLE] = folder
        try:
            yield
        finally:
            del os.environ[metrics.MULTIPROCESS_VARIABLE]


def served_at(config: settings.Settings, host: str, port: int) -> settings.Settings:
    """The settings with links to ``host:port`` when ``NOTIFIER_BASE_URL`` does not say where.

    A wildcard address is no place to link to; such links lead to this
    machine's loopback, and NOTIFIER_BASE_URL says where the world reaches it.
    """
    if "base_url" in config.model_fields_set:
        return config
    name = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in name:  # an IPv6 literal goes in brackets
        name = f"[{name}]"
    return config.model_copy(update={"base_url": f"http://{name}:{port}"})


@click.command()
def worker() -> None:
    """Run the scheduler and sender only; start several on PostgreSQL to scale out."""
    eventloop.run(_work(_started_engine(load())))


async def _work(engine: Notifier) -> None:
    from notifier.runtime import lifecycle

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with lifecycle.delivering(engine):
        log.info("worker.started")
        await stop.wait()
        log.info("worker.stopping")
    engine.close()
    log.info("worker.stopped")
