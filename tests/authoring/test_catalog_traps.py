"""The marketer's catalog traps: each caught by ``templates check`` at the ``.po`` line.

A scratch copy of the project's templates, catalogs and babel.cfg; the
catalogs are edited as a person would in a text editor.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from notifier import cli
from notifier.authoring import check, translations
from notifier.mail import i18n, render
from tests import ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, tmp_path / "templates")
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, tmp_path / "locales")
    shutil.copy(ROOT / "babel.cfg", tmp_path / "babel.cfg")
    shutil.copytree(
        ROOT / "notifier", tmp_path / "notifier", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def catalog(project: Path, locale: str) -> Path:
    return project / "locales" / locale / i18n.CATALOG_PATH


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` once; returns the 1-based line where it started."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def problems(project: Path) -> list[str]:
    report = check.run(project / "templates", project / "locales")
    return [problem.format(project) for problem in report.problems]


def test_an_unterminated_quote_is_named_at_its_line(project: Path) -> None:
    nl = catalog(project, "nl")
    line = edit(nl, 'msgstr "Neem een kijkje"', 'msgstr "Neem een kijkje!')
    assert problems(project) == [
        f"locales/nl/LC_MESSAGES/messages.po:{line}: "
        "a string without its closing quote (or text after it)"
    ]
    renderer = render.Renderer(project / "templates", project / "locales")
    with pytest.raises(Exception, match="closing quote"):
        renderer.render("newsletter", "nl", {})


def test_stale_copy_left_by_removing_the_fuzzy_flag(project: Path) -> None:
    nl = catalog(project, "nl")
    line = edit(
        nl,
        'msgid "Take a look"\nmsgstr "Neem een kijkje"',
        '#| msgid "Take a look"\nmsgid "Take a closer look"\nmsgstr "Take a look"',
    )
    template = project / "templates" / "newsletter.mjml.j2"
    edit(template, '_("Take a look")', '_("Take a closer look")')
    found = problems(project)
    assert (
        f"locales/nl/LC_MESSAGES/messages.po:{line + 1}: the translation is the old text "
        "'Take a look', not a translation of 'Take a closer look'"
    ) in found


def test_update_gives_the_english_catalog_the_new_copy(project: Path) -> None:
    template = project / "templates" / "newsletter.mjml.j2"
    edit(template, '_("Take a look")', '_("Take a closer look")')
    runner = CliRunner()
    folders = ["--locales-dir", str(project / "locales")]
    mapping = ["--mapping", str(project / "babel.cfg")]
    assert runner.invoke(cli.main, ["i18n", "extract", *mapping, *folders]).exit_code == 0
    assert runner.invoke(cli.main, ["i18n", "update", *folders]).exit_code == 0
    english = catalog(project, "en").read_text(encoding="utf-8")
    assert 'msgid "Take a closer look"\nmsgstr "Take a closer look"' in english
    assert "#| msgid" not in english
    dutch = catalog(project, "nl").read_text(encoding="utf-8")
    assert '#, fuzzy\n#| msgid "Take a look"\nmsgid "Take a closer look"' in dutch
    # Written without source line numbers: a changed line elsewhere changes no location.
    for text in (english, dutch, (project / "locales" / "messages.pot").read_text()):
        assert not re.search(r"^#: .*:\d+", text, re.MULTILINE)
    status = runner.invoke(cli.main, ["i18n", "status", *folders])
    assert status.exit_code == 0
    lines = status.output.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("en\t") and "(100%), 0 fuzzy, 0 untranslated" in lines[0]
    assert lines[1].startswith("nl\t") and ", 1 fuzzy, 0 untranslated" in lines[1]
    assert str(catalog(project, "nl")) in lines[1]


@pytest.mark.parametrize(
    ("translation", "message"),
    [
        ("Bedankt voor %(nmuber)s", "has %(nmuber)s that the source lacks and lacks %(number)s"),
        (
            "Bedankt voor {{ number }}",
            "has {{ number }} that the source lacks and lacks %(number)s",
        ),
        ("Bedankt!", "lacks %(number)s"),
    ],
)
def test_a_placeholder_the_source_lacks_is_blamed_on_the_po_line(
    project: Path, translation: str, message: str
) -> None:
    nl = catalog(project, "nl")
    line = edit(
        nl,
        'msgid "Thanks for your order %(number)s"\nmsgstr "Bedankt voor je bestelling %(number)s"',
        f'msgid "Thanks for your order %(number)s"\nmsgstr "{translation}"',
    )
    expected = (
        f"locales/nl/LC_MESSAGES/messages.po:{line}: "
        f"the translation of 'Thanks for your order %(number)s' {message}"
    )
    assert expected in problems(project)


def test_the_shipped_catalogs_have_no_faults() -> None:
    assert translations.catalog_faults(i18n.DEFAULT_LOCALES_DIR) == []
