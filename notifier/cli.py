"""The ``notifier`` command: parse, make one Notifier call, print."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import pydantic

from notifier import errors, keyring, settings
from notifier.authoring import check, samples, translations
from notifier.flows import kinds
from notifier.mail.pool import default_processes
from notifier.runtime import eventloop, logconfig, metrics
from notifier.schemas import CampaignTestIn
from notifier.service import Notifier
from notifier.store.db import SchemaState

log = logging.getLogger("notifier")
_T = TypeVar("_T")


class BadSetting(click.ClickException):
    """A setting notifier cannot run with: one line naming the variable, exit status 2."""

    exit_code = 2


class _Commands(click.Group):
    """The one place where notifier's errors become exits: settings 2, anything else 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.ConfigurationError as exc:
            raise BadSetting(str(exc)) from exc
        except errors.NotifierError as exc:
            raise click.ClickException(str(exc)) from exc


def _load() -> settings.Settings:
    """The settings, the log format they ask for, and a warning for each unknown variable."""
    config = settings.load()
    if config.log_format != "text":
        logconfig.configure(logging.getLogger().level, config.log_format)
    for name, closest in settings.unknown_variables(os.environ):
        if closest:
            log.warning("settings.unknown_variable variable=%s closest=%s", name, closest)
        else:
            log.warning("settings.unknown_variable variable=%s", name)
    return config


def _engine(config: settings.Settings, **kwargs: Any) -> Notifier:
    """The engine for this command, its database connections closed when the command ends."""
    engine = Notifier(config, **kwargs)
    click.get_current_context().call_on_close(engine.close)
    return engine


class Refusal(click.ClickException):
    """A start refused until the operator fixes what it names: exit status 2, one line."""

    exit_code = 2


def _ensure_mail(engine: Notifier) -> None:
    """Refuse to start an engine that would accept events it cannot turn into mail."""
    problems = engine.preflight()
    if problems:
        more = len(problems) - 1
        also = f" (and {more} more: `notifier templates check` lists them)" if more else ""
        raise Refusal(f"cannot make mail, not starting: {problems[0]}{also}")


def _ensure_schema(engine: Notifier) -> None:
    """Migrate the embedded SQLite database by itself; PostgreSQL is migrated on purpose.

    An unreachable database fails here, at start, as a bad setting.
    """
    state = engine.database.schema_state()
    if state is SchemaState.CURRENT:
        return
    if engine.settings.is_sqlite:
        engine.upgrade_database()
        return
    raise click.ClickException(_NOT_CURRENT[state])


_NOT_CURRENT = {
    SchemaState.MISSING: "the database has no schema yet: run `notifier db upgrade` first",
    SchemaState.OTHER: "the database schema is not this version's: run `notifier db upgrade`",
}


def _notice(config: settings.Settings, text: str, **style: Any) -> None:
    """A word to whoever starts ``serve``: coloured on the terminal, or a JSON log line."""
    if config.log_format == "json":
        log.warning(text)
    else:
        click.secho(text, err=True, **style)


def _warn_insecure_links(config: settings.Settings) -> None:
    if config.insecure_base_url:
        log.warning(
            "settings.base_url_not_https variable=NOTIFIER_BASE_URL reason=%s",
            json.dumps("one-click unsubscribe (RFC 8058) needs https links for real mail"),
        )


@click.group(cls=_Commands)
@click.version_option(package_name="notifier", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """notifier: a webshop's customer email, from shop events to delivered mail."""
    logconfig.configure(logging.DEBUG if verbose else logging.INFO)


@main.command()
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

    config = _served_at(_load(), host, port)
    engine = _engine(config)
    _ensure_mail(engine)
    _ensure_schema(engine)
    _warn_insecure_links(config)
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


def _served_at(config: settings.Settings, host: str, port: int) -> settings.Settings:
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


@main.command()
def worker() -> None:
    """Run the scheduler and sender only; start several on PostgreSQL to scale out."""
    config = _load()
    engine = _engine(config)
    _ensure_mail(engine)
    _ensure_schema(engine)
    _warn_insecure_links(config)
    eventloop.run(_work(engine))


async def _work(engine: Notifier) -> None:
    from notifier.runtime import scheduler

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


@main.group()
def keys() -> None:
    """Encryption keys."""


@keys.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def keys_new(path: Path) -> None:
    """Write fresh keys to PATH (0600), for NOTIFIER_KEY_FILE: keep it out of the data's folder."""
    keyring.write_new(path)
    click.echo(f"wrote {path}; set NOTIFIER_KEY_FILE={path.resolve()}")


@keys.command("rotate")
@click.option("--page-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
def keys_rotate(page_size: int) -> None:
    """Re-encrypt stored personal data with the first NOTIFIER_ENCRYPTION_KEY.

    Put the new key first and keep the old ones after it; run this (the engine
    may keep running); then drop the old keys.
    """
    engine = _engine(_load())
    _ensure_schema(engine)
    rotated = engine.privacy.rotate_keys(page_size)
    for column, count in rotated.items():
        click.echo(f"{column:<20} {count:>9} re-encrypted")


@main.command()
def status() -> None:
    """Show the queue depth by status and category, and the last errors.

    Reads only: no migration, no key file, no database file is made.
    """
    engine = _engine(_load(), read_only=True)
    state = engine.database.schema_state()
    if state is SchemaState.MISSING and engine.database.sqlite_file is not None:
        raise click.ClickException(
            f"no database yet: {engine.database.sqlite_file.resolve()} does not exist "
            "(`notifier db upgrade` or `notifier serve` creates it)"
        )
    if state is not SchemaState.CURRENT:
        raise click.ClickException(_NOT_CURRENT[state])
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


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """A duration like 2h, 30m, 3d or 90s, as the NOTIFIER_*_DELAY settings take it."""
    try:
        return None if value is None else settings.parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


@main.group()
def messages() -> None:
    """Messages in the outbox."""


@messages.command("retry")
@click.argument("message_ids", metavar="ID...", nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed message.")
@click.option(
    "--since", callback=_duration, help="With --failed: only those failed within, e.g. 2h."
)
@click.option("--kind", help="With --failed: only messages of this kind.")
def messages_retry(
    message_ids: tuple[str, ...], all_failed: bool, since: timedelta | None, kind: str | None
) -> None:
    """Put failed messages back in the queue, due now: by ID, or --failed [--since 2h] [--kind K].

    For mail that failed for good (a template error, a refusal), once the
    cause is repaired: a template fixed and serve or the workers restarted.
    Their attempts stay on record, and consent is checked again at sending.
    A running serve or worker sends them at its next poll.
    """
    if bool(message_ids) == all_failed:
        raise click.UsageError("give the ids of the messages to retry, or --failed (not both)")
    if not all_failed and (since is not None or kind is not None):
        raise click.UsageError("--since and --kind select among --failed messages")
    if kind is not None and kind not in kinds.KINDS:
        known = ", ".join(sorted(kinds.KINDS))
        raise click.BadParameter(f"unknown kind {kind!r} (known: {known})", param_hint="--kind")
    engine = _engine(_load())
    _ensure_schema(engine)
    if all_failed:
        retried = engine.retry_failed(since=since, kind=kind)
        for message in retried:
            click.echo(f"retried {message.id} ({message.kind})")
        click.echo(f"{len(retried)} back in the queue")
        return
    refused = 0
    for message_id in message_ids:
        try:
            again = engine.retry_message(message_id)
        except (errors.NotFound, errors.Conflict) as exc:
            click.echo(f"not retried: {exc}", err=True)
            refused += 1
        else:
            click.echo(f"retried {again.id} ({again.kind})")
    if refused:
        raise SystemExit(1)


@main.group()
def suppressions() -> None:
    """Look up and lift the suppression of one address (never a list of addresses)."""


@suppressions.command("show")
@click.argument("email")
def suppressions_show(email: str) -> None:
    """Say whether EMAIL is suppressed, why and since when."""
    engine = _engine(_load())
    _ensure_schema(engine)
    try:
        found = engine.choices.suppression(email)
    except errors.NotFound as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"suppressed: {found.reason} since {found.since:%Y-%m-%d %H:%M} ({found.detail or '-'})"
    )


@suppressions.command("lift")
@click.argument("email")
@click.option("--reason", required=True, help="Why mail may reach the address again (recorded).")
def suppressions_lift(email: str, reason: str) -> None:
    """Let mail reach EMAIL again; the reason is kept with the lift."""
    engine = _engine(_load())
    _ensure_schema(engine)
    try:
        lifted = engine.choices.lift_suppression(email, reason)
    except errors.NotifierError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"lifted the {lifted.previous_reason} suppression")


@main.group()
def webhooks() -> None:
    """The signed status webhooks to the shop (NOTIFIER_WEBHOOK_URL)."""


@webhooks.command("replay")
@click.option(
    "--since",
    required=True,
    help="Send again every event of this last stretch of time: 30m, 2h, 1d.",
)
def webhooks_replay(since: str) -> None:
    """Send again the events recorded since then, with the ids the shop has seen."""
    try:
        stretch = settings.parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    engine = _engine(_load())
    _ensure_schema(engine)
    count = engine.replay_webhooks(stretch)
    click.echo(f"{count} webhook events queued again; a running serve or worker sends them")


@main.group()
def bounces() -> None:
    """Reports that came back to the bounce listener or a provider webhook."""


@bounces.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--kind",
    "kinds_",
    multiple=True,
    help="Only these kinds (hard_bounce, soft_bounce, complaint, auto_reply, notice, unparsed).",
)
def bounces_list(limit: int, kinds_: tuple[str, ...]) -> None:
    """List the newest reports, what they were taken for and the message they were about."""
    engine = _engine(_load())
    _ensure_schema(engine)
    rows = engine.feedback.recent(limit, list(kinds_) or None)
    if not rows:
        click.echo("no reports received")
        return
    click.echo(f"{'id':>6} {'received':<20} {'source':<9} {'kind':<12} {'status':<7} message")
    for row in rows:
        click.echo(
            f"{row.id:>6} {row.received_at:%Y-%m-%d %H:%M:%S}  {row.source:<9} {row.kind:<12} "
            f"{row.status_code or '-':<7} {row.message_id or '-'}  {row.detail or ''}"
        )


# -- the marketer's workshop (templates, test mail, translations) --------------------

_TEMPLATES_DIR = click.option(
    "--templates-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The templates to use [default: NOTIFIER_TEMPLATES_DIR or the project's templates/].",
)
_LOCALES_DIR = click.option(
    "--locales-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The catalogs to use [default: NOTIFIER_LOCALES_DIR or the project's locales/].",
)


def _folders(
    templates_dir: Path | None, locales_dir: Path | None
) -> tuple[settings.Settings, Path, Path]:
    """The settings, and the templates and locales folders: the options', else the settings'."""
    config = _load()
    return config, templates_dir or config.templates_dir, locales_dir or config.locales_dir


@main.group()
def templates() -> None:
    """Preview and check the mail templates."""


@templates.command("check")
@_TEMPLATES_DIR
@_LOCALES_DIR
def templates_check(templates_dir: Path | None, locales_dir: Path | None) -> None:
    """Render every template in every locale and name each problem as path:line: message.

    Exits with status 1 when there is a problem, so a CI job fails on it.
    """
    config, templates_dir, locales_dir = _folders(templates_dir, locales_dir)
    report = check.run(templates_dir, locales_dir, config.default_locale, config.timezone)
    for problem in report.problems:
        click.echo(problem.format(Path.cwd()))
    for warning in report.warnings:
        click.echo(f"warning: {warning.format(Path.cwd())}")
    click.echo(report.summary())
    if not report.ok:
        raise SystemExit(1)


@templates.command("preview")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8026, show_default=True, type=int)
@_TEMPLATES_DIR
@_LOCALES_DIR
def templates_preview(
    host: str, port: int, templates_dir: Path | None, locales_dir: Path | None
) -> None:
    """Serve a page with every template in every locale, updated as you save a file."""
    import uvicorn

    from notifier.authoring import preview

    config, templates_dir, locales_dir = _folders(templates_dir, locales_dir)
    app = preview.create_app(templates_dir, locales_dir, config.default_locale, config.timezone)
    click.echo(f"Template preview on http://{host}:{port}/ (Ctrl+C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@main.command("send-test")
@click.argument("kind")
@click.option("--to", "to_email", required=True, help="Where the test mail goes.")
@click.option("--locale", help="The language to send in [default: NOTIFIER_DEFAULT_LOCALE].")
@click.option(
    "--sample",
    "sample_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The sample data to use [default: templates/samples/KIND.json].",
)
def send_test(kind: str, to_email: str, locale: str | None, sample_file: Path | None) -> None:
    """Send one real mail of KIND, with sample data, through the configured SMTP server.

    The subject starts with [TEST] and the mail carries an X-Notifier-Test
    header; nothing is queued or recorded.
    """
    config = _load()
    try:
        kinds.get(kind)
        sample = samples.load(sample_file or samples.path(config.templates_dir, kind))
    except errors.NotifierError as exc:
        raise click.ClickException(str(exc)) from exc
    if config.capture_mode:
        raise click.ClickException(
            "NOTIFIER_SMTP_HOST is not set: send-test sends a real mail, so it needs an SMTP "
            "server (NOTIFIER_SMTP_HOST, NOTIFIER_SMTP_PORT, NOTIFIER_SMTP_TLS)"
        )
    engine = _engine(config)
    language = locale or config.default_locale
    try:
        message_id = eventloop.run(
            engine.send_test(kind, to_email, language, samples.send_context(sample))
        )
    except errors.DeliveryError as exc:
        raise click.ClickException(f"the SMTP server did not take the mail: {exc}") from exc
    except errors.NotifierError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"sent a test {kind} mail ({language}) to {to_email}, Message-ID {message_id}")


@main.group()
def campaigns() -> None:
    """Newsletter campaigns: try one on a colleague before it goes out."""


@campaigns.command("test")
@click.argument("campaign_id")
@click.option("--to", "to_emails", required=True, multiple=True, help="Where it goes (repeatable).")
@click.option("--locale", help="Whose content to send [default: NOTIFIER_DEFAULT_LOCALE].")
def campaigns_test(campaign_id: str, to_emails: tuple[str, ...], locale: str | None) -> None:
    """Send campaign CAMPAIGN_ID's real mail, subject marked [TEST], through SMTP now.

    Nothing is queued or counted: a draft can be tried before it is scheduled.
    """
    config = _load()
    if config.capture_mode:
        raise click.ClickException(
            "NOTIFIER_SMTP_HOST is not set: a campaign test sends a real mail, so it needs an "
            "SMTP server (NOTIFIER_SMTP_HOST, NOTIFIER_SMTP_PORT, NOTIFIER_SMTP_TLS)"
        )
    try:
        request = CampaignTestIn(to=list(to_emails), locale=locale)
    except pydantic.ValidationError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--to/--locale") from exc
    engine = _engine(config)
    try:
        sent = eventloop.run(engine.send_campaign_test(campaign_id, request.to, request.locale))
    except errors.DeliveryError as exc:
        raise click.ClickException(f"the SMTP server did not take the mail: {exc}") from exc
    for item in sent:
        click.echo(
            f"sent a test of {campaign_id} ({item['locale']}) to {item['to']}, "
            f"Message-ID {item['message_id']}"
        )


@main.group()
def subscribers() -> None:
    """Newsletter subscribers: bring them in from the shop's previous tool."""


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--confirm",
    type=click.Choice(["send", "none"]),
    default="none",
    show_default=True,
    help="Send the double opt-in mail to rows without consent proof.",
)
def subscribers_import(file: Path, confirm: str) -> None:
    """Import the subscribers in FILE (.csv with a header line, .ndjson, or .json, a list).

    Rows with consent proof (at, source, ip, text_version) become confirmed
    subscribers; the others unconfirmed. Refused rows are listed by line and
    field and the exit status is 1; the good rows are imported all the same.
    """
    from notifier.usecases import subscriber_import as reading

    engine = _engine(_load())
    _ensure_schema(engine)
    suffix = file.suffix.lower()
    with file.open(encoding="utf-8-sig", newline="") as lines:
        if suffix == ".csv":
            rows: Iterator[Any] = reading.csv_rows(lines)
        elif suffix in (".ndjson", ".jsonl"):
            rows = reading.ndjson_rows(lines)
        elif suffix == ".json":
            try:
                rows = reading.json_rows(json.load(lines))
            except ValueError as exc:
                raise click.ClickException(f"{file}: not JSON: {exc}") from exc
        else:
            raise click.BadParameter("expected a .csv, .ndjson or .json file", param_hint="FILE")
        done = engine.import_subscribers(rows, "send" if confirm == "send" else "none")
    click.echo(
        f"{done.imported} of {done.rows} rows imported: {done.confirmed} confirmed, "
        f"{done.unconfirmed} unconfirmed ({done.confirm_mails} double opt-in mails queued), "
        f"{done.kept_unsubscribed} kept unsubscribed"
    )
    for problem in done.errors:
        where = f"{problem.field}: " if problem.field else ""
        click.echo(f"{file}:{problem.line}: {where}{problem.message}", err=True)
    if done.errors:
        raise SystemExit(1)


@main.group("i18n")
def i18n_group() -> None:
    """Translations: Babel's extract, update and compile, and init for a new language."""


def _i18n_step(step: Callable[[], _T]) -> _T:
    try:
        return step()
    except errors.NotifierError as exc:
        raise click.ClickException(str(exc)) from exc


@i18n_group.command("extract")
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=settings.PROJECT_DIR / "babel.cfg",
    show_default="the project's babel.cfg",
    help="Babel's mapping file; its paths are relative to its folder.",
)
@_LOCALES_DIR
def i18n_extract(mapping: Path, locales_dir: Path | None) -> None:
    """Collect every translatable string into LOCALES_DIR/messages.pot."""
    _, _, locales_dir = _folders(None, locales_dir)
    pot, count = _i18n_step(lambda: translations.extract_messages(mapping, locales_dir))
    click.echo(f"{count} strings in {pot}; next: notifier i18n update")


@i18n_group.command("update")
@_LOCALES_DIR
def i18n_update(locales_dir: Path | None) -> None:
    """Bring every language's catalog up to date with messages.pot, keeping translations."""
    _, _, locales_dir = _folders(None, locales_dir)
    updated = _i18n_step(lambda: translations.update_catalogs(locales_dir))
    left = _i18n_step(lambda: translations.unfinished(locales_dir))
    for path in updated:
        todo = sum(1 for entry in left if entry.file == path)
        click.echo(f"updated {path}: {todo} to translate or check")


@i18n_group.command("status")
@_LOCALES_DIR
def i18n_status(locales_dir: Path | None) -> None:
    """How much of each language's catalog is translated, fuzzy or still empty."""
    _, _, locales_dir = _folders(None, locales_dir)
    for entry in _i18n_step(lambda: translations.coverage(locales_dir)):
        click.echo(
            f"{entry.locale}\t{entry.file}\t{entry.translated}/{entry.total} translated "
            f"({entry.percent}%), {entry.fuzzy} fuzzy, {entry.untranslated} untranslated"
        )


@i18n_group.command("init")
@click.argument("locale")
@_LOCALES_DIR
def i18n_init(locale: str, locales_dir: Path | None) -> None:
    """Start a catalog for a new language, e.g. `notifier i18n init de`."""
    _, _, locales_dir = _folders(None, locales_dir)
    path = _i18n_step(lambda: translations.init_catalog(locales_dir, locale))
    click.echo(f"created {path}; translate its entries, then run: notifier templates check")


@i18n_group.command("compile")
@_LOCALES_DIR
def i18n_compile(locales_dir: Path | None) -> None:
    """Write .mo files beside the .po files (optional: notifier reads the .po files itself)."""
    _, _, locales_dir = _folders(None, locales_dir)
    for path in _i18n_step(lambda: translations.compile_catalogs(locales_dir)):
        click.echo(f"compiled {path}")
