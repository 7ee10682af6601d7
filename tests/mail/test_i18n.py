"""Tests for notifier.mail.i18n: negotiation, catalogs and Babel formatting."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages import catalog, extract, pofile
from hypothesis import given
from hypothesis import strategies as st

from notifier import errors
from notifier.mail import compose, i18n
from tests import ROOT

AVAILABLE = ["en", "nl"]

PO_HEADER = """\
msgid ""
msgstr ""
"Language: {locale}\\n"
"Content-Type: text/plain; charset=utf-8\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"

"""


def write_po(locales_dir: Path, locale: str, body: str) -> Path:
    """Write a catalog for ``locale`` under ``locales_dir`` and return its path."""
    path = locales_dir / locale / "LC_MESSAGES" / "messages.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PO_HEADER.format(locale=locale) + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("nl", "nl"),
        ("en", "en"),
        ("nl_BE", "nl"),
        ("nl-BE", "nl"),
        ("NL-be", "nl"),
        ("EN_gb", "en"),
        ("en-US", "en"),
        ("  en  ", "en"),
        ("nl_BE.UTF-8", "nl"),
        ("en_GB@euro", "en"),
        ("fr", "nl"),
        ("fr_BE", "nl"),
        ("de-DE", "nl"),
        ("garbage!!", "nl"),
        ("english", "nl"),
        ("e", "nl"),
        ("nl_", "nl"),
        ("_", "nl"),
        ("\x00", "nl"),
        ("x" * 10_000, "nl"),
        ("", "nl"),
        (None, "nl"),
    ],
)
def test_negotiate_picks_regional_then_language_then_default(
    requested: str | None, expected: str
) -> None:
    assert i18n.negotiate(requested, AVAILABLE, "nl") == expected


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        ("nl-be", ["en", "nl", "nl_BE"], "nl_BE"),
        ("nl_NL", ["en", "nl", "nl_BE"], "nl"),
        ("nl", ["en", "nl", "nl_BE"], "nl"),
        ("en", ["en_GB", "nl"], "en_GB"),
        ("en_US", ["en_GB", "nl"], "en_GB"),
        ("en", [], "nl"),
        ("en", ["not a locale", "nl"], "nl"),
    ],
)
def test_negotiate_with_regional_catalogs(
    requested: str, available: list[str], expected: str
) -> None:
    assert i18n.negotiate(requested, available, "nl") == expected


@given(st.text())
def test_negotiate_never_raises(requested: str) -> None:
    assert i18n.negotiate(requested, AVAILABLE, "nl") in {"en", "nl"}


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("123.45", "EUR", "nl", "€\xa0123,45"),
        ("123.45", "EUR", "en", "€123.45"),
        (Decimal("1234.5"), "EUR", "nl", "€\xa01.234,50"),
        ("1234.5", "EUR", "en", "€1,234.50"),
        ("0", "EUR", "nl", "€\xa00,00"),
        ("9.95", "USD", "en", "$9.95"),
        ("168.94", "EUR", "nl_BE", "€\xa0168,94"),
        ("168.94", "EUR", "de", "168,94\xa0€"),
        ("168.94", "EUR", "xx", "€168.94"),
    ],
)
def test_format_money(amount: str | Decimal, currency: str, locale: str, expected: str) -> None:
    assert i18n.format_money(amount, currency, locale) == expected


@pytest.mark.parametrize("amount", ["12,50", "abc", "NaN", "Infinity", ""])
def test_format_money_rejects_what_is_not_a_decimal(amount: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        i18n.format_money(amount, "EUR", "nl")


@pytest.mark.parametrize(
    ("value", "locale", "expected"),
    [
        ("1234.5", "nl", "1.234,5"),
        ("1234.5", "en", "1,234.5"),
        (3, "nl", "3"),
    ],
)
def test_format_number(value: str | int, locale: str, expected: str) -> None:
    assert i18n.format_number(value, locale) == expected


@pytest.mark.parametrize(
    ("value", "locale", "expected"),
    [
        (date(2026, 11, 21), "nl", "21 november 2026"),
        (date(2026, 11, 21), "en", "November 21, 2026"),
        ("2026-11-21", "nl", "21 november 2026"),
        # 23:30 UTC is already the next day in Amsterdam.
        (datetime(2026, 11, 21, 23, 30, tzinfo=UTC), "nl", "22 november 2026"),
        ("2026-11-21T23:30:00+00:00", "en", "November 22, 2026"),
        ("2026-11-21T23:30:00", "nl", "22 november 2026"),
    ],
)
def test_format_date_uses_the_local_date(
    value: date | datetime | str, locale: str, expected: str
) -> None:
    assert i18n.format_date(value, locale, "Europe/Amsterdam") == expected


@pytest.mark.parametrize(
    ("value", "locale", "expected"),
    [
        ("2026-11-21T09:00:00Z", "nl", "21 nov 2026, 10:00:00"),
        ("2026-07-01T09:00:00+00:00", "nl", "1 jul 2026, 11:00:00"),
        (datetime(2026, 11, 21, 9, 0, tzinfo=UTC), "en", "Nov 21, 2026, 10:00:00\u202fAM"),
    ],
)
def test_format_datetime_in_the_shop_time_zone(
    value: datetime | str, locale: str, expected: str
) -> None:
    assert i18n.format_datetime(value, locale, "Europe/Amsterdam") == expected


def test_format_date_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        i18n.format_date("21-11-2026", "nl", "Europe/Amsterdam")
    with pytest.raises(ValueError, match="time zone"):
        i18n.format_date("2026-11-21T10:00:00Z", "nl", "Mars/Olympus")
    with pytest.raises(ValueError, match="with a time"):
        i18n.format_datetime("2026-11-21", "nl", "Europe/Amsterdam")


def test_format_country() -> None:
    assert i18n.format_country("NL", "nl") == "Nederland"
    assert i18n.format_country("be", "en") == "Belgium"
    assert i18n.format_country("ZZZ", "en") == "ZZZ"


def test_filters_are_bound_to_their_locale() -> None:
    nl = i18n.filters("nl", "Europe/Amsterdam")
    assert set(nl) == {"money", "number", "date", "datetime", "country", "postal_address"}
    assert nl["money"]("123.45", "EUR") == "€\xa0123,45"
    assert nl["date"]("2026-11-21", "short") == "21-11-2026"
    assert i18n.filters("en", "UTC")["datetime"]("2026-11-21T09:00:00Z", "short") == (
        "11/21/26, 9:00\u202fAM"
    )


def test_supported_locales_come_from_the_catalogs_on_disk() -> None:
    assert i18n.SUPPORTED_LOCALES == ("en", "nl")
    assert i18n.Catalogs(i18n.DEFAULT_LOCALES_DIR).available() == ["en", "nl"]


def test_catalogs_translate_and_cache() -> None:
    catalogs = i18n.Catalogs(i18n.DEFAULT_LOCALES_DIR)
    nl = catalogs.translations("nl")
    assert nl.gettext("Email preferences") == "E-mailvoorkeuren"
    assert nl.ngettext(
        "Your package contains %(count)s item.", "Your package contains %(count)s items.", 3
    ) == ("Er zitten %(count)s artikelen in je pakket.")
    assert catalogs.translations("en").gettext("Email preferences") == "Email preferences"
    assert catalogs.translations("nl") is nl


def test_a_locale_without_catalog_keeps_the_msgids(tmp_path: Path) -> None:
    translations = i18n.Catalogs(tmp_path).translations("fr")
    assert translations.gettext("Email preferences") == "Email preferences"
    assert i18n.Catalogs(tmp_path / "missing").available() == []


def test_fuzzy_entries_are_not_used(tmp_path: Path) -> None:
    write_po(
        tmp_path,
        "nl",
        """\
msgid "Email preferences"
msgstr "E-mailvoorkeuren"

#, fuzzy
msgid "Unsubscribe from these emails"
msgstr "Afmelden voor alles"
""",
    )
    translations = i18n.Catalogs(tmp_path).translations("nl")
    assert translations.gettext("Email preferences") == "E-mailvoorkeuren"
    assert translations.gettext("Unsubscribe from these emails") == (
        "Unsubscribe from these emails"
    )


def test_a_broken_catalog_names_file_and_line(tmp_path: Path) -> None:
    write_po(tmp_path, "nl", 'msgid "Email preferences"\nmsgstr "E-mailvoorkeuren"\nbogus\n')
    with pytest.raises(errors.TemplateError) as caught:
        i18n.Catalogs(tmp_path).translations("nl")
    assert caught.value.file == "nl/LC_MESSAGES/messages.po"
    assert caught.value.line == 9


def test_a_third_locale_falls_back_to_msgids(tmp_path: Path) -> None:
    locales = tmp_path / "locales"
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, locales)
    write_po(locales, "de", 'msgid "Email preferences"\nmsgstr "E-Mail-Einstellungen"\n')
    catalogs = i18n.Catalogs(locales)
    assert catalogs.available() == ["de", "en", "nl"]
    de = catalogs.translations("de")
    assert de.gettext("Email preferences") == "E-Mail-Einstellungen"
    assert de.gettext("Unsubscribe from these emails") == "Unsubscribe from these emails"
    assert i18n.negotiate("de_AT", catalogs.available(), "nl") == "de"


def _catalog_entries(locale: str) -> dict[str | tuple[str, ...], catalog.Message]:
    path = i18n.DEFAULT_LOCALES_DIR / locale / i18n.CATALOG_PATH
    with path.open("rb") as po:
        return {
            message.id if isinstance(message.id, str) else tuple(message.id): message
            for message in pofile.read_po(po)
            if message.id
        }


def _extracted_msgids() -> set[str | tuple[str, ...]]:
    method_map = [("templates/**.j2", "jinja2"), ("notifier/**.py", "python")]
    options = {
        "templates/**.j2": {
            "extensions": "jinja2.ext.i18n",
            "silent": "false",
            "trimmed": "true",
            "newstyle_gettext": "true",
        }
    }
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract.extract_from_dir(
        ROOT, method_map=method_map, options_map=options
    ):
        found.add(message)
    return found


@pytest.mark.parametrize("locale", ["nl", "en"])
def test_every_string_in_the_templates_is_translated(locale: str) -> None:
    entries = _catalog_entries(locale)
    msgids = _extracted_msgids()
    assert len(msgids) > 40
    missing = msgids - set(entries)
    assert not missing, f"not in the {locale} catalog: {missing}"
    for msgid in msgids:
        message = entries[msgid]
        assert not message.fuzzy, msgid
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated in {locale}: {msgid!r}"


@pytest.mark.parametrize("locale", ["nl", "en"])
def test_category_names_are_lower_case_mid_sentence(locale: str) -> None:
    """Issue 22: "Afmelden voor Berichten over je bestelling?" read as a German noun.

    A category's name starts with a capital where it stands alone (a heading, a
    checkbox); inside any other string of the catalog it must not.
    """
    entries = _catalog_entries(locale)
    labels = [str(entries[msgid].string) for msgid in compose.LIST_LABELS.values()]
    assert all(label[:1].isupper() for label in labels), labels
    wrong = []
    for message in entries.values():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in map(str, strings):
            for label in labels:
                for found in re.finditer(re.escape(label), text):
                    before = text[: found.start()].rstrip()
                    if before and not before.endswith((".", "!", "?", ":", ">")):
                        wrong.append(text)
    assert wrong == [], wrong
