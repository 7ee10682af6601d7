"""What the commands share: settings, the engine, the schema check and a few options."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from notifier import settings
from notifier.runtime import logconfig
from notifier.service import Notifier
from notifier.store.db import SchemaState

log = logging.getLogger("notifier")


class Refusal(click.ClickException):
    """A start refused until the operator fixes what it names: exit status 2, one line."""

    exit_code = 2


def load() -> settings.Settings:
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


def engine_for(config: settings.Settings, **kwargs: Any) -> Notifier:
    """The engine for this command, its database connections closed when the command ends."""
    engine = Notifier(config, **kwargs)
    click.get_current_context().call_on_close(engine.close)
    return engine


def migrated_engine() -> Notifier:
    """The engine of a command that reads or writes the outbox: settings loaded, schema current."""
    engine = engine_for(load())
    ensure_schema(engine)
    return engine


def ensure_schema(engine: Notifier) -> None:
    """Migrate the embedded SQLite database by itself; PostgreSQL is migrated on purpose.

    An unreachable database fails here, at start, as a bad setting, and so
    does a key store that lost its keys (``Notifier.check_keystore``).
    """
    state = engine.database.schema_state()
    if state is not SchemaState.CURRENT:
        if not engine.settings.is_sqlite:
            raise click.ClickException(NOT_CURRENT[state])
        engine.upgrade_database()
    engine.check_keystore()


NOT_CURRENT = {
    SchemaState.MISSING: "the database has no schema yet: run `notifier db upgrade` first",
    SchemaState.OTHER: "the database schema is not this version's: run `notifier db upgrade`",
}


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """A duration like 2h, 30m, 3d or 90s, as the NOTIFIER_*_DELAY settings take it."""
    try:
        return None if value is None else settings.parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def needs_smtp(config: settings.Settings, what: str) -> None:
    """Refuse a command that sends real mail when no SMTP server is configured."""
    if config.capture_mode:
        raise click.ClickException(
            f"NOTIFIER_SMTP_HOST is not set: {what} sends a real mail, so it needs an SMTP "
            "server (NOTIFIER_SMTP_HOST, NOTIFIER_SMTP_PORT, NOTIFIER_SMTP_TLS)"
        )


templates_dir_option = click.option(
    "--templates-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The templates to use [default: NOTIFIER_TEMPLATES_DIR or the project's templates/].",
)
locales_dir_option = click.option(
    "--locales-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The catalogs to use [default: NOTIFIER_LOCALES_DIR or the project's locales/].",
)


def folders(
    templates_dir: Path | None, locales_dir: Path | None
) -> tuple[settings.Settings, Path, Path]:
    """The settings, and the templates and locales folders: the options', else the settings'."""
    config = load()
    return config, templates_dir or config.templates_dir, locales_dir or config.locales_dir
