"""``notifier messages``: failed mail back in the queue once its cause is repaired."""

from __future__ import annotations

from datetime import timedelta

import click

from notifier import errors
from notifier.cli.common import duration, migrated_engine
from notifier.flows import kinds


@click.group()
def messages() -> None:
    """Messages in the outbox."""


@messages.command("retry")
@click.argument("message_ids", metavar="ID...", nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed message.")
@click.option(
    "--since", callback=duration, help="With --failed: only those failed within, e.g. 2h."
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
    engine = migrated_engine()
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
