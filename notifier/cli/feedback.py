"""``notifier suppressions``, ``bounces`` and ``webhooks``: what came back, and what goes out."""

from __future__ import annotations

import click

from notifier import settings
from notifier.cli.common import migrated_engine


@click.group()
def suppressions() -> None:
    """Look up and lift the suppression of one address (never a list of addresses)."""


@suppressions.command("show")
@click.argument("email")
def suppressions_show(email: str) -> None:
    """Say whether EMAIL is suppressed, why and since when."""
    found = migrated_engine().choices.suppression(email)
    click.echo(
        f"suppressed: {found.reason} since {found.since:%Y-%m-%d %H:%M} ({found.detail or '-'})"
    )


@suppressions.command("lift")
@click.argument("email")
@click.option("--reason", required=True, help="Why mail may reach the address again (recorded).")
def suppressions_lift(email: str, reason: str) -> None:
    """Let mail reach EMAIL again; the reason is kept with the lift."""
    lifted = migrated_engine().choices.lift_suppression(email, reason)
    click.echo(f"lifted the {lifted.previous_reason} suppression")


@click.group()
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
    count = migrated_engine().replay_webhooks(stretch)
    click.echo(f"{count} webhook events queued again; a running serve or worker sends them")


@click.group()
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
    rows = migrated_engine().feedback.recent(limit, list(kinds_) or None)
    if not rows:
        click.echo("no reports received")
        return
    click.echo(f"{'id':>6} {'received':<20} {'source':<9} {'kind':<12} {'status':<7} message")
    for row in rows:
        click.echo(
            f"{row.id:>6} {row.received_at:%Y-%m-%d %H:%M:%S}  {row.source:<9} {row.kind:<12} "
            f"{row.status_code or '-':<7} {row.message_id or '-'}  {row.detail or ''}"
        )
