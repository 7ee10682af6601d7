"""``notifier campaigns`` and ``notifier subscribers``: a campaign tried, a list brought in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pydantic

from notifier.cli.common import engine_for, load, migrated_engine, needs_smtp
from notifier.runtime import eventloop
from notifier.schemas import CampaignTestIn


@click.group()
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
    config = load()
    needs_smtp(config, "a campaign test")
    try:
        request = CampaignTestIn(to=list(to_emails), locale=locale)
    except pydantic.ValidationError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--to/--locale") from exc
    engine = engine_for(config)
    sent = eventloop.run(engine.send_campaign_test(campaign_id, request.to, request.locale))
    for item in sent:
        click.echo(
            f"sent a test of {campaign_id} ({item['locale']}) to {item['to']}, "
            f"Message-ID {item['message_id']}"
        )


@click.group()
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

    engine = migrated_engine()
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
