"""The ``notifier`` command: parse, make one Notifier call, print."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from typing import Any

import click

from notifier import errors, settings
from notifier.service import Notifier

log = logging.getLogger("notifier")


def _load() -> settings.Settings:
    try:
        return settings.load()
    except errors.ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _engine(config: settings.Settings, **kwargs: Any) -> Notifier:
    try:
        return Notifier(config, **kwargs)
    except errors.NotifierError as exc:
        raise click.ClickException(str(exc)) from exc


def _ensure_schema(engine: Notifier) -> None:
    """Migrate the embedded SQLite database by itself; PostgreSQL is migrated on purpose."""
    if engine.settings.is_sqlite:
        engine.upgrade_database()
    elif not engine.database.is_current():
        raise click.ClickException("the database has no schema yet: run `notifier db upgrade` first")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """notifier: a webshop's customer email, from shop events to delivered mail."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Per-job chatter and aiosmtpd's transcripts (which name addresses) stay out of the log.
    for noisy in ("apscheduler", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the API, the pages, the scheduler and the sender in one process."""
    import uvicorn

    from notifier.web.app import create_app

    config = _load()
    engine = _engine(config)
    _ensure_schema(engine)
    tokens = config.api_tokens
    if not tokens:
        tokens = [secrets.token_urlsafe(24)]
        click.echo(f"No NOTIFIER_API_TOKENS set; this run's API token is: {tokens[0]}", err=True)
    if engine.capture is not None:
        click.secho(
            f"DEVELOPMENT MODE: no NOTIFIER_SMTP_HOST, mail is captured at "
            f"http://{host}:{port}/dev/inbox and never delivered.",
            fg="yellow",
            bold=True,
            err=True,
        )
    uvicorn.run(create_app(engine, tokens), host=host, port=port, log_level="info")


@main.command()
def worker() -> None:
    """Run the scheduler and sender only; start several on PostgreSQL to scale out."""
    config = _load()
    engine = _engine(config)
    _ensure_schema(engine)
    asyncio.run(_work(engine))


async def _work(engine: Notifier) -> None:
    from notifier import scheduler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await engine.start()
    jobs = scheduler.start(engine)
    log.info("worker.started")
    await stop.wait()
    log.info("worker.stopping")
    jobs.shutdown(wait=False)
    await engine.stop()
    engine.close()
    log.info("worker.stopped")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations (Alembic) up to the newest."""
    engine = _engine(_load())
    engine.upgrade_database()
    click.echo("database is up to date")


@main.command()
def status() -> None:
    """Show the queue depth by status and category, and the last errors."""
    engine = _engine(_load())
    _ensure_schema(engine)
    report = engine.status()
    if not report.depth:
        click.echo("the outbox is empty")
    else:
        click.echo(f"{'status':<12} {'category':<15} {'messages':>9}")
        for row in sorted(report.depth, key=lambda r: (r.status, r.category)):
            click.echo(f"{row.status:<12} {row.category:<15} {row.count:>9}")
    if report.recent_errors:
        click.echo("\nlast errors:")
        for message in report.recent_errors:
            click.echo(f"  {message.id} {message.kind} {message.status}: {message.last_error}")
