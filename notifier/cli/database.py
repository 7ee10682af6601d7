"""``notifier db``, ``notifier keys`` and ``notifier status``: the stored state, for operators."""

from __future__ import annotations

from pathlib import Path

import click

from notifier import keyring
from notifier.cli.common import NOT_CURRENT, engine_for, load, migrated_engine
from notifier.store.db import SchemaState
from notifier.usecases import privacy


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations (Alembic) up to the newest."""
    engine_for(load()).upgrade_database()
    click.echo("database is up to date")


@click.group()
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
    """Re-wrap the customers' data keys with the first NOTIFIER_ENCRYPTION_KEY.

    Data sealed with data keys is not rewritten; data the master key sealed
    (written before data keys) moves under them. Put the new key first and
    keep the old ones after it; run this (the engine may keep running); then
    drop the old keys.
    """
    rotated = migrated_engine().privacy.rotate_keys(page_size)
    for column, count in rotated.items():
        done = "re-wrapped" if column == privacy.DATA_KEYS else "re-encrypted"
        click.echo(f"{column:<20} {count:>9} {done}")


@click.command()
def status() -> None:
    """Show the queue depth by status and category, and the last errors.

    Reads only: no migration, no key file, no database file is made.
    """
    engine = engine_for(load(), read_only=True)
    state = engine.database.schema_state()
    if state is SchemaState.MISSING and engine.database.sqlite_file is not None:
        raise click.ClickException(
            f"no database yet: {engine.database.sqlite_file.resolve()} does not exist "
            "(`notifier db upgrade` or `notifier serve` creates it)"
        )
    if state is not SchemaState.CURRENT:
        raise click.ClickException(NOT_CURRENT[state])
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
