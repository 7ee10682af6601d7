"""The ``notifier`` command: one module per area, errors turned into exits in one place.

Each command parses its options, makes one ``Notifier`` call and prints;
``common`` holds what several share (settings, the engine, the schema
check, the folder options). Raising is how a command fails: ``_Commands``
below is the only place where notifier's errors become exit statuses. The
commands may import the kernel, ``service``, ``authoring`` and ``runtime``;
nothing else imports ``cli``.

A command's module is imported when the command runs (click's lazy-group
pattern), not when ``cli`` is: every render process re-imports the
``notifier`` script as its main module (``multiprocessing``'s spawn), and
should hold the renderer, not the whole engine.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from notifier import errors
from notifier.runtime import logconfig

_COMMANDS = {
    "serve": "serve:serve",
    "worker": "serve:worker",
    "db": "database:db",
    "keys": "database:keys",
    "status": "database:status",
    "messages": "messages:messages",
    "suppressions": "feedback:suppressions",
    "webhooks": "feedback:webhooks",
    "bounces": "feedback:bounces",
    "templates": "workshop:templates",
    "send-test": "workshop:send_test",
    "campaigns": "newsletters:campaigns",
    "subscribers": "newsletters:subscribers",
    "i18n": "workshop:i18n",
}
"""Each command's name, and where it is: ``module:attribute`` in ``notifier.cli``."""


class BadSetting(click.ClickException):
    """A setting notifier cannot run with: one line naming the variable, exit status 2."""

    exit_code = 2


class _Commands(click.Group):
    """Exit statuses: a bad setting 2, mail the SMTP server refused 1, any other refusal 1.

    The commands are listed from ``_COMMANDS`` and imported when looked up.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attribute = _COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        return command

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
