"""The gettext workflow on ``locales/``: extract, update, init, compile, and what is left to do.

This is the build-time half of Babel (``babel.messages``: extraction and
catalog files), called by ``notifier i18n …`` and ``templates check``; the
run-time half (reading catalogs, formatting) stays in ``notifier.mail.i18n``.
It uses Babel's Python API rather than ``pybabel`` so errors carry file and
line and no subprocess or PATH is involved; the files it writes are the
ones ``pybabel`` would write.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import babel
import jinja2
from babel.messages import catalog, extract, frontend, mofile, pofile
from jinja2 import nodes

from notifier import errors
from notifier.mail import i18n

POT = "messages.pot"
"""The template catalog, at the top of the locales directory."""

JINJA_OPTIONS = {
    "extensions": "jinja2.ext.i18n",
    "silent": "false",
    "trimmed": "true",
    "newstyle_gettext": "true",
}
"""How templates are read for their strings; the same as babel.cfg (a test holds them equal)."""
MESSAGE_ARGUMENTS = {"_": 1, "gettext": 1, "ngettext": 2, "pgettext": 2, "npgettext": 3}
"""How many leading arguments of each gettext function are its text (context, singular, plural)."""

Msgid = str | tuple[str, ...]
SOURCE_LANGUAGE = "en"
"""The language the templates' msgids are written in."""


@dataclass(frozen=True)
class Unfinished:
    """A catalog entry a translator still has to do: empty, or marked fuzzy."""

    file: Path
    line: int
    msgid: str
    fuzzy: bool


def extract_messages(mapping_file: Path, locales_dir: Path) -> tuple[Path, int]:
    """Write ``<locales_dir>/messages.pot`` from the sources ``mapping_file`` (babel.cfg) names.

    Paths in the mapping are relative to its own folder, as with ``pybabel
    extract -F babel.cfg .`` run there. The header of an existing template
    (project, version, copyright comment) is kept. Returns the file and the
    number of messages.
    """
    try:
        with mapping_file.open(encoding="utf-8") as handle:
            method_map, options_map = frontend.parse_mapping_cfg(  # type: ignore[no-untyped-call]
                handle, str(mapping_file)
            )
    except OSError as exc:
        raise errors.NotFound(f"cannot read the Babel mapping {mapping_file}: {exc}") from exc
    target = locales_dir / POT
    template = _new_template(target)
    for file, line, message, comments, context in _extract(
        mapping_file.parent, method_map, options_map
    ):
        template.add(message, None, [(file, line)], auto_comments=comments, context=context)
    _write_po(target, template)
    return target, len(template)


def update_catalogs(locales_dir: Path) -> list[Path]:
    """Merge ``messages.pot`` into every locale's catalog, keeping the translations made.

    New strings arrive empty; a string whose English changed a little keeps
    its old translation marked fuzzy, which the engine ignores until a
    translator checks it and removes the flag. In the source language's
    catalog (``SOURCE_LANGUAGE``: the msgids are its text) every new or
    changed entry takes its new msgid, so it can never hold the old copy.
    """
    pot = _pot(locales_dir)
    updated = []
    for locale in i18n.available_locales(locales_dir):
        path = locales_dir / locale / i18n.CATALOG_PATH
        translations = _read(path, locale)
        # Read afresh for each: Babel hands the template's own message objects to the catalog.
        translations.update(_read(pot))
        if locale.split("_")[0] == SOURCE_LANGUAGE:
            _copy_source(translations)
        _write_po(path, translations)
        updated.append(path)
    return updated


def _copy_source(source: catalog.Catalog) -> None:
    """Make every entry that is new, empty or fuzzy say its msgid, confirmed."""
    for message in source:
        if message.id and (message.fuzzy or not all(_strings(message))):
            message.string = message.id
            message.flags.discard("fuzzy")
            message.previous_id = []


def init_catalog(locales_dir: Path, locale: str) -> Path:
    """Start the catalog of a new language from ``messages.pot``, every entry untranslated."""
    tag = i18n.normalize(locale)
    if tag is None:
        raise errors.InvalidInput(f"not a locale: {locale!r} (expected e.g. de or pt_BR)", "locale")
    try:
        parsed = babel.Locale.parse(tag)
    except (ValueError, babel.UnknownLocaleError) as exc:
        raise errors.InvalidInput(f"Babel does not know the locale {tag!r}", "locale") from exc
    path = locales_dir / tag / i18n.CATALOG_PATH
    if path.exists():
        raise errors.Conflict(f"{path} exists already; use `notifier i18n update` to refresh it")
    started = _read(_pot(locales_dir), tag)
    started.locale = parsed
    started.revision_date = datetime.now().astimezone()
    started.fuzzy = False
    _write_po(path, started)
    return path


def compile_catalogs(locales_dir: Path) -> list[Path]:
    """Write a ``messages.mo`` beside each ``.po``, without fuzzy entries, as the engine does."""
    written = []
    for locale in i18n.available_locales(locales_dir):
        source = locales_dir / locale / i18n.CATALOG_PATH
        target = source.with_suffix(".mo")
        with target.open("wb") as handle:
            mofile.write_mo(handle, _read(source, locale), use_fuzzy=False)
        written.append(target)
    return written


def unfinished(locales_dir: Path) -> list[Unfinished]:
    """Every untranslated or fuzzy entry of every locale's catalog, with the line of its msgid."""
    found = []
    for locale in i18n.available_locales(locales_dir):
        path = locales_dir / locale / i18n.CATALOG_PATH
        for message in _read(path, locale):
            if not message.id:
                continue
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if message.fuzzy or not all(strings):
                msgid = message.id if isinstance(message.id, str) else message.id[0]
                found.append(Unfinished(path, message.lineno or 1, msgid, message.fuzzy))
    return found


@dataclass(frozen=True)
class Coverage:
    """How far one locale's catalog is translated: entries done, fuzzy and empty."""

    locale: str
    file: Path
    total: int
    translated: int
    fuzzy: int

    @property
    def untranslated(self) -> int:
        return self.total - self.translated - self.fuzzy

    @property
    def percent(self) -> int:
        return 100 * self.translated // self.total if self.total else 100


def coverage(locales_dir: Path) -> list[Coverage]:
    """Each locale's catalog, counted: what ``notifier i18n status`` prints."""
    counted = []
    for locale in i18n.available_locales(locales_dir):
        path = locales_dir / locale / i18n.CATALOG_PATH
        entries = [message for message in _read(path, locale) if message.id]
        fuzzy = sum(1 for message in entries if message.fuzzy)
        done = sum(1 for message in entries if not message.fuzzy and all(_strings(message)))
        counted.append(Coverage(locale, path, len(entries), done, fuzzy))
    return counted


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{\{\s*([\w.]+)\s*\}\}")
"""``%(name)s``, what a ``{% trans %}`` block's ``{{ name }}`` becomes, and ``{{ name }}``
written by hand in a translation (which gettext never fills in)."""


def catalog_faults(locales_dir: Path) -> list[tuple[Path, int, str]]:
    """Entries that would ship wrong copy, each at its ``.po`` line.

    A msgstr that is still the previous source text (``#| msgid``; stale
    copy once someone removes ``#, fuzzy``), and a translation whose
    placeholders differ from its msgid's (a misspelt name fails at render
    time, far from the catalog line that holds it).
    """
    found = []
    for locale in i18n.available_locales(locales_dir):
        path = locales_dir / locale / i18n.CATALOG_PATH
        previous_ids = _previous_ids(path)
        for message in _read(path, locale):
            if not message.id:
                continue
            line = message.lineno or 1
            ids = _texts(message.id)
            previous = previous_ids.get(line, "")
            if previous and previous != ids[0] and _strings(message)[0] == previous:
                found.append((path, line, f"the translation is the old text {previous!r}, "
                              f"not a translation of {ids[0]!r}"))  # fmt: skip
            if message.fuzzy or not all(_strings(message)):
                continue
            wanted = _placeholders(ids)
            for string in _strings(message):
                have = _placeholders((string,))
                if have != wanted:
                    found.append((path, line, _placeholder_fault(ids[0], wanted, have)))
    return found


_PREVIOUS = re.compile(r'#\|\s*(?:msgid\s+)?"((?:[^"\\]|\\.)*)"')


def _previous_ids(path: Path) -> dict[int, str]:
    """The ``#| msgid`` text before each msgid, by the msgid's line (Babel reads none of it)."""
    found: dict[int, str] = {}
    previous: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _PREVIOUS.match(line.strip())
        if match:
            previous.append(pofile.unescape(f'"{match.group(1)}"'))
        elif line.startswith("msgid ") and previous:
            found[number] = "".join(previous)
            previous = []
        elif line.startswith("msgid "):
            previous = []
    return found


def _placeholders(texts: tuple[str, ...]) -> set[str]:
    return {
        "%(" + percent + ")s" if percent else "{{ " + braces + " }}"
        for text in texts
        for percent, braces in _PLACEHOLDER.findall(text)
    }


def _placeholder_fault(msgid: str, wanted: set[str], have: set[str]) -> str:
    parts = []
    if have - wanted:
        parts.append(f"has {', '.join(sorted(have - wanted))} that the source lacks")
    if wanted - have:
        parts.append(f"lacks {', '.join(sorted(wanted - have))}")
    return f"the translation of {msgid!r} {' and '.join(parts)}"


def _strings(message: catalog.Message) -> tuple[str, ...]:
    """A message's msgstr, or its plural forms, as a tuple of texts ("" for none)."""
    return _texts(message.string) or ("",)


def _texts(value: object) -> tuple[str, ...]:
    """Babel's str, tuple or list of texts (or None) as a tuple."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple | list):
        return tuple(str(text or "") for text in value)
    return ()


def template_messages(templates_dir: Path) -> dict[Msgid, tuple[Path, int]]:
    """Every translatable string in the templates, with the file and line of its first use."""
    found: dict[Msgid, tuple[Path, int]] = {}
    method_map = [("**.j2", "jinja2")]
    for file, line, message, _comments, _context in _extract(
        templates_dir, method_map, {"**.j2": JINJA_OPTIONS}
    ):
        found.setdefault(message, (templates_dir / file, line))
    return found


def translated_data(templates_dir: Path) -> list[tuple[Path, int]]:
    """Where a template hands ``_()`` (or another gettext function) data instead of its own text.

    ``_(item.title)`` can never be in a catalog, and a translation is trusted
    HTML: the data would go into the mail unescaped. Files that do not parse
    are left to the syntax check.
    """
    environment = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    found = []
    for file in sorted(templates_dir.rglob("*.j2")):
        try:
            tree = environment.parse(file.read_text(encoding="utf-8"), file.name, str(file))
        except (jinja2.TemplateSyntaxError, UnicodeDecodeError):
            continue
        for call in tree.find_all(nodes.Call):
            name = call.node.name if isinstance(call.node, nodes.Name) else None
            texts = call.args[: MESSAGE_ARGUMENTS.get(name or "", 0)]
            if any(
                not (isinstance(text, nodes.Const) and isinstance(text.value, str))
                for text in texts
            ):
                found.append((file, call.lineno))
    return found


def catalog_ids(path: Path, locale: str) -> set[str]:
    """The msgids a catalog holds (the singular one for plural entries)."""
    return {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in _read(path, locale)
        if message.id
    }


def _extract(
    root: Path, method_map: list[tuple[str, str]], options_map: dict[str, dict[str, str]]
) -> Iterator[tuple[str, int, Msgid, list[str], str | None]]:
    """Babel's extraction, with a failure turned into a TemplateError naming file and line."""
    current: list[str] = []

    def note(filename: str, _method: str, _options: dict[str, str]) -> None:
        current[:] = [filename]

    try:
        yield from extract.extract_from_dir(
            root, method_map=method_map, options_map=options_map, callback=note
        )
    except Exception as exc:
        line = getattr(exc, "lineno", None)
        file = str(root / current[0]) if current else str(root)
        raise errors.TemplateError(f"cannot extract strings: {exc}", file=file, line=line) from exc


def _new_template(target: Path) -> catalog.Catalog:
    """An empty template catalog with the header of the current ``messages.pot``, if any."""
    if not target.is_file():
        return catalog.Catalog(project="notifier", version=importlib.metadata.version("notifier"))
    previous = _read(target)
    return catalog.Catalog(
        header_comment=previous.header_comment,
        project=previous.project,
        version=previous.version,
        msgid_bugs_address=previous.msgid_bugs_address,
    )


def _pot(locales_dir: Path) -> Path:
    path = locales_dir / POT
    if not path.is_file():
        raise errors.NotFound(f"{path} does not exist: run `notifier i18n extract` first")
    return path


def _read(path: Path, locale: str | None = None) -> catalog.Catalog:
    """Parse a ``.po`` or ``.pot`` file; a broken one raises TemplateError naming file and line."""
    return i18n.read_catalog(path, locale)


def _write_po(path: Path, content: catalog.Catalog) -> None:
    """Replace ``path`` in one step, so an interrupted run never leaves half a catalog."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as output:
            pofile.write_po(output, content, include_lineno=False, include_previous=True)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
