"""The ``notifier`` command: one module per area, errors turned into exits in one place.

Each command parses its options, makes one ``Notifier`` call and prints;
``common`` holds what several share (settings, the engine, the schema
check, the folder options). Raising is how a command fails: ``_Commands``
below is the only place where notifier's errors become exit statuses. The
commands may import the kernel, ``service``, ``authoring`` and ``runtime``;
nothing else imports ``cli``.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from notifier import errors
from notifier.cli import database, feedback, messages, newsletters, serve, workshop
from notifier.cli.common import BadSetting
from notifier.runtime import logconfig


class _Commands(click.Group):
    """Exit statuses: a bad setting 2, mail the SMTP server refused 1, any other refusal 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.ConfigurationError as exc:
            raise BadSetting(str(exc)) from exc
        except errors.DeliveryError as exc:
            raise click.ClickException(f"the SMTP server did not take the mail: {exc}") from exc
        except errors.NotifierError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Commands)
@click.version_option(package_name="notifier", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """notifier: a webshop's customer email, from shop events to delivered mail."""
    logconfig.configure(logging.DEBUG if verbose else logging.INFO)


for _command in (
    serve.serve,
    serve.worker,
    database.db,
    database.keys,
    database.status,
    messages.messages,
    feedback.suppressions,
    feedback.webhooks,
    feedback.bounces,
    workshop.templates,
    workshop.send_test,
    newsletters.campaigns,
    newsletters.subscribers,
    workshop.i18n,
):
    main.add_command(_command)
