"""The marketer's workshop: ``notifier templates``, ``send-test`` and ``i18n``."""

from __future__ import annotations

from pathlib import Path

import click

from notifier.authoring import check, samples, translations
from notifier.cli.common import (
    engine_for,
    folders,
    load,
    locales_dir_option,
    needs_smtp,
    templates_dir_option,
)
from notifier.flows import kinds
from notifier.runtime import eventloop
from notifier.settings import PROJECT_DIR


@click.group()
def templates() -> None:
    """Preview and check the mail templates."""


@templates.command("check")
@templates_dir_option
@locales_dir_option
@click.option(
    "--verbose",
    is_flag=True,
    help="Also say, per template, whether it is compiled once or rendered per mail, and why.",
)
def templates_check(templates_dir: Path | None, locales_dir: Path | None, verbose: bool) -> None:
    """Render every template in every locale and name each problem as path:line: message.

    Exits with status 1 when there is a problem, so a CI job fails on it.
    """
    config, templates_dir, locales_dir = folders(templates_dir, locales_dir)
    report = check.run(templates_dir, locales_dir, config.default_locale, config.timezone)
    for problem in report.problems:
        click.echo(problem.format(Path.cwd()))
    for warning in report.warnings:
        click.echo(f"warning: {warning.format(Path.cwd())}")
    if verbose:
        for line in report.compilation():
            click.echo(line)
    click.echo(report.summary())
    if not report.ok:
        raise SystemExit(1)


@templates.command("preview")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8026, show_default=True, type=int)
@templates_dir_option
@locales_dir_option
def templates_preview(
    host: str, port: int, templates_dir: Path | None, locales_dir: Path | None
) -> None:
    """Serve a page with every template in every locale, updated as you save a file."""
    import uvicorn

    from notifier.authoring import preview

    config, templates_dir, locales_dir = folders(templates_dir, locales_dir)
    app = preview.create_app(templates_dir, locales_dir, config.default_locale, config.timezone)
    click.echo(f"Template preview on http://{host}:{port}/ (Ctrl+C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@click.command("send-test")
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
    config = load()
    kinds.get(kind)
    sample = samples.load(sample_file or samples.path(config.templates_dir, kind))
    needs_smtp(config, "send-test")
    engine = engine_for(config)
    language = locale or config.default_locale
    message_id = eventloop.run(
        engine.send_test(
            kind, to_email, language, samples.send_context(samples.for_locale(sample, language))
        )
    )
    click.echo(f"sent a test {kind} mail ({language}) to {to_email}, Message-ID {message_id}")


@click.group("i18n")
def i18n() -> None:
    """Translations: Babel's extract, update and compile, and init for a new language."""


@i18n.command("extract")
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=PROJECT_DIR / "babel.cfg",
    show_default="the project's babel.cfg",
    help="Babel's mapping file; its paths are relative to its folder.",
)
@locales_dir_option
def i18n_extract(mapping: Path, locales_dir: Path | None) -> None:
    """Collect every translatable string into LOCALES_DIR/messages.pot."""
    _, _, locales_dir = folders(None, locales_dir)
    pot, count = translations.extract_messages(mapping, locales_dir)
    click.echo(f"{count} strings in {pot}; next: notifier i18n update")


@i18n.command("update")
@locales_dir_option
def i18n_update(locales_dir: Path | None) -> None:
    """Bring every language's catalog up to date with messages.pot, keeping translations."""
    _, _, locales_dir = folders(None, locales_dir)
    updated = translations.update_catalogs(locales_dir)
    left = translations.unfinished(locales_dir)
    for path in updated:
        todo = sum(1 for entry in left if entry.file == path)
        click.echo(f"updated {path}: {todo} to translate or check")


@i18n.command("status")
@locales_dir_option
def i18n_status(locales_dir: Path | None) -> None:
    """How much of each language's catalog is translated, fuzzy or still empty."""
    _, _, locales_dir = folders(None, locales_dir)
    for entry in translations.coverage(locales_dir):
        click.echo(
            f"{entry.locale}\t{entry.file}\t{entry.translated}/{entry.total} translated "
            f"({entry.percent}%), {entry.fuzzy} fuzzy, {entry.untranslated} untranslated"
        )


@i18n.command("init")
@click.argument("locale")
@locales_dir_option
def i18n_init(locale: str, locales_dir: Path | None) -> None:
    """Start a catalog for a new language, e.g. `notifier i18n init de`."""
    _, _, locales_dir = folders(None, locales_dir)
    path = translations.init_catalog(locales_dir, locale)
    click.echo(f"created {path}; translate its entries, then run: notifier templates check")


@i18n.command("compile")
@locales_dir_option
def i18n_compile(locales_dir: Path | None) -> None:
    """Write .mo files beside the .po files (optional: notifier reads the .po files itself)."""
    _, _, locales_dir = folders(None, locales_dir)
    for path in translations.compile_catalogs(locales_dir):
        click.echo(f"compiled {path}")
