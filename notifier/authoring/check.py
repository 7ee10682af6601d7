"""``templates check``: every problem a marketer can introduce, each named by file and line.

Runs what the engine runs — every kind rendered in every locale with its
sample data by a fresh Renderer, and again without each field the kinds
table calls optional and without all of them (the smallest context intake
accepts) — and adds the rules a mail must meet
before it ships: the unsubscribe and preferences links where the law wants
them, ``alt`` on images, a subject that fits, HTML under Gmail's clipping
size, every string translated, and text (never data) given to ``_()``. Pure
of any CLI: it returns a Report, and the preview page shows the same Report.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markupsafe

from notifier import errors, schemas
from notifier.authoring import markup, samples, sources, translations
from notifier.flows import kinds
from notifier.mail import i18n, mail_size, render
from notifier.vocabulary import TemplateFault

SUBJECT_MAX = 78
"""Longer subjects are cut off in most inbox lists (and RFC 5322 advises it per line)."""

_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)

TRANSLATED_DATA = (
    "_() is given data, not text: a translation is trusted HTML, so the data would go into "
    'the mail unescaped, and no catalog can hold it; write the text itself in _("…"), '
    "or show the data without _()"
)

_SUBJECT_BLOCK = r"\{%-?\s*block\s+subject\b"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing to fix, where it is: ``file:line: message``."""

    file: Path
    line: int
    message: str

    def format(self, base: Path | None = None) -> str:
        """``path:line: message``, the path relative to ``base`` when it lies inside it."""
        shown = self.file
        if base is not None and self.file.is_absolute() and self.file.is_relative_to(base):
            shown = self.file.relative_to(base)
        return f"{shown}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Rendition:
    """One kind in one locale, rendered with its sample: the mail, or why there is none."""

    kind: str
    locale: str
    mail: render.RenderedMail | None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    kinds: list[str]
    locales: list[str]
    renditions: list[Rendition]
    problems: list[Problem]
    """Every problem once, sorted by file and line; those of the renditions included."""
    warnings: list[Problem] = field(default_factory=list)
    """What to look at but does not fail the check: a mail close to the size limit."""
    fallbacks: dict[str, str] = field(default_factory=dict)
    """The kinds' template files rendered per mail rather than compiled once, and why."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def compilation(self) -> list[str]:
        """A line per kind: its template compiled once per shape, or rendered per mail and why."""
        lines = []
        for kind in self.kinds:
            name = kind + render.SUFFIX
            reason = self.fallbacks.get(name)
            how = "compiled once per shape" if reason is None else f"rendered per mail: {reason}"
            lines.append(f"{name}: {how}")
        return lines

    def summary(self) -> str:
        """One line for the end of the output, such as "7 templates by 2 locales: all good"."""
        size = f"{len(self.kinds)} templates \N{MULTIPLICATION SIGN} {len(self.locales)} locales"
        if self.ok:
            return f"{size}: all good"
        count = len(self.problems)
        return f"{size}: {count} problem{'s' if count != 1 else ''}"


def run(
    templates_dir: Path,
    locales_dir: Path,
    default_locale: str = "nl",
    timezone: str = "Europe/Amsterdam",
) -> Report:
    """Check the templates in ``templates_dir`` with the catalogs in ``locales_dir``."""
    templates_dir, locales_dir = templates_dir.resolve(), locales_dir.resolve()
    renderer = render.Renderer(templates_dir, locales_dir, default_locale, timezone)
    where = _Where(templates_dir, locales_dir)
    found: list[Problem] = []
    warnings: list[Problem] = []
    syntax = _syntax(renderer, where)
    found += syntax
    found += _coverage(renderer, templates_dir)
    found += _translations(templates_dir, locales_dir, renderer.locales(), check_usage=not syntax)
    found += [
        Problem(file, line, TRANSLATED_DATA)
        for file, line in translations.translated_data(templates_dir)
    ]
    sourced_images = _images_in_sources(templates_dir)
    found += sourced_images
    renditions = []
    for kind in renderer.kinds():
        try:
            sample = samples.load(samples.path(templates_dir, kind))
        except errors.TemplateError as exc:
            found.append(where.problem(exc))
            continue
        found += _sample_links(samples.path(templates_dir, kind), sample)
        for locale in renderer.locales():
            localized = samples.for_locale(sample, locale)
            rendition = _render(renderer, where, kind, locale, localized, bool(sourced_images))
            renditions.append(rendition)
            found += rendition.problems
            if rendition.mail is not None:
                found += _without_optional(renderer, where, rendition, localized)
                warnings += _size_warning(where, rendition)
    return Report(
        renderer.kinds(),
        renderer.locales(),
        renditions,
        sorted(set(found)),
        sorted(warnings),
        renderer.fallbacks(),
    )


def _sample_links(file: Path, sample: dict[str, Any]) -> list[Problem]:
    """The sample's links that intake would refuse (``schemas.unsafe_links``), at their line."""
    found = []
    for path in schemas.unsafe_links(sample):
        value: Any = sample
        for step in path.split("."):
            value = value[int(step)] if isinstance(value, list) else value[step]
        line = sources.line_of(file, re.escape(json.dumps(value)))
        found.append(
            Problem(
                file,
                line,
                f"{path}: a link must be an {'/'.join(schemas.LINK_SCHEMES)} URL; intake and "
                "campaign creation refuse this one",
            )
        )
    return found


def _size_warning(where: _Where, rendition: Rendition) -> list[Problem]:
    """A mail close to the size limit (``mail_size``), as campaign creation warns of it."""
    assert rendition.mail is not None
    size = len(rendition.mail.html.encode())
    if mail_size.judge(size) is not mail_size.Verdict.WARNING:
        return []
    return [Problem(where.kind_file(rendition.kind), 1, mail_size.describe(size, rendition.locale))]


@dataclass(frozen=True)
class _Where:
    """Turns the relative file names in TemplateErrors into paths."""

    templates_dir: Path
    locales_dir: Path

    def problem(self, error: errors.TemplateError, fallback: Path | None = None) -> Problem:
        file = Path(error.file) if error.file else fallback or self.templates_dir
        if not file.is_absolute():
            in_locales = self.locales_dir / file
            file = in_locales if in_locales.exists() else self.templates_dir / file
        return Problem(file, error.line or 1, error.message)

    def kind_file(self, kind: str) -> Path:
        return self.templates_dir / (kind + render.SUFFIX)


def _syntax(renderer: render.Renderer, where: _Where) -> list[Problem]:
    try:
        return [where.problem(error) for error in renderer.template_errors()]
    except errors.TemplateError as exc:
        return [where.problem(exc)]


def _coverage(renderer: render.Renderer, templates_dir: Path) -> list[Problem]:
    """Kinds the engine sends without a template, and templates of kinds it never sends."""
    found = []
    have = set(renderer.kinds())
    for name in sorted(set(kinds.KINDS) - have):
        file = templates_dir / (name + render.SUFFIX)
        found.append(Problem(file, 1, f"no template for the kind {name!r}: create this file"))
    for name in sorted(have - set(kinds.KINDS)):
        file = templates_dir / (name + render.SUFFIX)
        known = ", ".join(sorted(kinds.KINDS))
        found.append(Problem(file, 1, f"{name!r} is not a kind notifier sends (it sends {known})"))
    for name in sorted(have):
        sample = samples.path(templates_dir, name)
        if not sample.is_file():
            found.append(Problem(sample, 1, f"no sample data for {name!r}: create this file"))
    return found


def _translations(
    templates_dir: Path, locales_dir: Path, locales: list[str], check_usage: bool
) -> list[Problem]:
    """Untranslated and fuzzy entries, and strings the templates use that a catalog lacks."""
    try:
        found = [
            Problem(
                entry.file,
                entry.line,
                f"{'fuzzy' if entry.fuzzy else 'untranslated'}: {entry.msgid!r}",
            )
            for entry in translations.unfinished(locales_dir)
        ]
        found += [Problem(*fault) for fault in translations.catalog_faults(locales_dir)]
        if not check_usage:
            return found
        used = translations.template_messages(templates_dir)
        missing: dict[str, list[str]] = {}
        for locale in locales:
            have = translations.catalog_ids(locales_dir / locale / i18n.CATALOG_PATH, locale)
            for msgid in used:
                singular = msgid if isinstance(msgid, str) else msgid[0]
                if singular not in have:
                    missing.setdefault(singular, []).append(locale)
    except errors.TemplateError as exc:
        return [_Where(templates_dir, locales_dir).problem(exc)]
    for msgid, file_line in used.items():
        singular = msgid if isinstance(msgid, str) else msgid[0]
        if singular in missing:
            absent = ", ".join(missing[singular])
            found.append(
                Problem(
                    *file_line,
                    f"{singular!r} is not in the {absent} catalog: run `notifier i18n extract` "
                    "and `notifier i18n update`, then translate it",
                )
            )
    return found


def _images_in_sources(templates_dir: Path) -> list[Problem]:
    found = []
    for file in sources.template_files(templates_dir):
        text = file.read_text(encoding="utf-8", errors="replace")
        for offset in markup.images_without_alt(text):
            found.append(Problem(file, markup.line_at(text, offset), _NO_ALT))
    return found


_NO_ALT = 'image without alt text: add alt="…" saying what it shows (alt="" if it is decoration)'


def _without_optional(
    renderer: render.Renderer, where: _Where, full: Rendition, sample: dict[str, Any]
) -> list[Problem]:
    """What goes wrong when the shop leaves out what the kinds table lets it leave out.

    Each optional path alone (a partial address), then all of them at once
    (the smallest context intake accepts). Run only once the full sample
    renders; what it found is not told again for every variant.
    """
    known = kinds.KINDS.get(full.kind)
    if known is None:
        return []
    present = tuple(path for path in samples.leavable(known) if samples.has(sample, path))
    variants: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        ((path,), samples.without(sample, (path,))) for path in present
    ]
    if len(present) > 1:
        variants.append((samples.leavable(known), samples.minimal(sample, known)))
    found: list[Problem] = []
    for absent, context in variants:
        variant = _render(
            renderer, where, full.kind, full.locale, context, True, absent, full.problems
        )
        found += variant.problems
    return found


def _render(
    renderer: render.Renderer,
    where: _Where,
    kind: str,
    locale: str,
    sample: dict[str, Any],
    images_reported: bool,
    absent: tuple[str, ...] = (),
    told: list[Problem] | None = None,
) -> Rendition:
    """Render one kind in one locale and hold the result to every rule for a finished mail.

    ``absent`` names the optional paths taken out of ``sample``: a template
    that needs one is told so, and any other problem not already ``told``
    (by the full sample) says which context it appeared with.
    """
    try:
        mail = renderer.render(kind, locale, sample)
    except errors.TemplateError as exc:
        unguarded = _unguarded(where, exc, absent)
        if unguarded is not None:
            return Rendition(kind, locale, None, [unguarded])
        failure = _failure(renderer, where, kind, locale, sample, exc)
        return Rendition(kind, locale, None, _labelled([failure], absent, told))
    # mrml drops an unknown element without a word, so compiled MJML is scanned too.
    misplaced = _misplaced(renderer, where, kind, locale, sample)
    if misplaced is not None:
        return Rendition(kind, locale, None, _labelled([misplaced], absent, told))
    return Rendition(
        kind,
        locale,
        mail,
        _labelled(_finished(where, kind, locale, sample, mail, images_reported), absent, told),
    )


def _unguarded(
    where: _Where, error: errors.TemplateError, absent: tuple[str, ...]
) -> Problem | None:
    """The error as "this optional field is read unguarded", if a path left out caused it."""
    if error.missing is None:
        return None
    for path in absent:
        if error.missing == path or error.missing.startswith((f"{path}.", f"{path}[")):
            name = error.missing if error.missing in absent else path
            blamed = sources.blame_undefined(error, where.templates_dir)
            message = (
                f"{name} is optional (kinds table) but read unguarded; put what reads it "
                f"inside {{% if {name} is given %}}…{{% endif %}}"
            )
            return (
                Problem(*blamed, message)
                if blamed
                else dataclasses.replace(where.problem(error), message=message)
            )
    return None


def _labelled(
    problems: list[Problem], absent: tuple[str, ...], told: list[Problem] | None
) -> list[Problem]:
    """``problems`` but those ``told``, each saying which optional paths were left out."""
    if not absent:
        return problems
    problems = [problem for problem in problems if problem not in (told or [])]
    label = f"without {absent[0]}" if len(absent) == 1 else "without any optional field"
    return [
        dataclasses.replace(problem, message=f"{label} (kinds table): {problem.message}")
        for problem in problems
    ]


def _finished(
    where: _Where,
    kind: str,
    locale: str,
    sample: dict[str, Any],
    mail: render.RenderedMail,
    images_reported: bool,
) -> list[Problem]:
    """The rules a rendered mail must meet: subject, size, images, links."""
    file = where.kind_file(kind)
    found = []
    if len(mail.subject) > SUBJECT_MAX:
        found.append(
            Problem(
                file,
                sources.line_of(file, _SUBJECT_BLOCK),
                f"the {locale} subject has {len(mail.subject)} characters; keep it to "
                f"{SUBJECT_MAX}: {mail.subject!r}",
            )
        )
    size = len(mail.html.encode())
    if mail_size.judge(size) is mail_size.Verdict.REFUSED:
        found.append(Problem(file, 1, mail_size.describe(size, locale)))
    for match in _HREF.finditer(mail.html):
        url = html.unescape(match.group(1) if match.group(1) is not None else match.group(2))
        if not schemas.linkable(url):
            found.append(
                Problem(
                    file,
                    1,
                    f"the {locale} HTML links to {url[:60]!r}; a link must be an "
                    f"{'/'.join(schemas.LINK_SCHEMES)} URL",
                )
            )
    if not images_reported and markup.images_without_alt(mail.html):
        found.append(Problem(file, 1, f"the {locale} HTML has an {_NO_ALT}"))
    found += _links(file, kind, locale, sample, mail.html)
    return found


def _links(file: Path, kind: str, locale: str, sample: dict[str, Any], html: str) -> list[Problem]:
    """An unsubscribable kind must carry the sample's unsubscribe and preferences links."""
    known = kinds.KINDS.get(kind)
    if known is None or not known.unsubscribable:
        return []
    found = []
    links = sample.get("links")
    links = links if isinstance(links, dict) else {}
    for key, what in (("unsubscribe_url", "unsubscribe"), ("preferences_url", "preferences")):
        url = links.get(key)
        if not url:
            found.append(
                Problem(
                    file, 1, f"the sample has no links.{key}, so the {what} link cannot be checked"
                )
            )
        elif f'href="{markupsafe.escape(url)}"' not in html:
            found.append(
                Problem(
                    file,
                    1,
                    f"the mail has no {what} link, which {known.category} mail must have "
                    f"(partials/footer.mjml.j2 draws it from links.{key})",
                )
            )
    return found


def _failure(
    renderer: render.Renderer,
    where: _Where,
    kind: str,
    locale: str,
    sample: dict[str, Any],
    error: errors.TemplateError,
) -> Problem:
    """A render error as a Problem, at the line to fix rather than the line the tool stopped on."""
    file = where.kind_file(kind)
    if error.reason is TemplateFault.NO_SUBJECT_BLOCK:
        return Problem(file, 1, "missing subject: add {% block subject %}…{% endblock %}")
    if error.reason is TemplateFault.EMPTY_SUBJECT:
        return Problem(
            file, sources.line_of(file, _SUBJECT_BLOCK), f"the {locale} subject is empty"
        )
    if error.reason is not TemplateFault.MJML:
        blamed = sources.blame_undefined(error, where.templates_dir)
        return Problem(*blamed, error.message) if blamed else where.problem(error, fallback=file)
    # mrml names the place where its parser gave up, often well after the
    # misplaced tag and in another file; the scan finds the tag itself.
    misplaced = _misplaced(renderer, where, kind, locale, sample)
    if misplaced is not None:
        return misplaced
    if error.mjml_line is None or error.detail is None:
        return where.problem(error, fallback=file)
    produced = renderer.mjml(kind, locale, sample)
    return _traced(where, file, produced, error.mjml_line, error.detail)


def _misplaced(
    renderer: render.Renderer, where: _Where, kind: str, locale: str, sample: dict[str, Any]
) -> Problem | None:
    """The first MJML tag out of place in what the template produced, at its template line."""
    produced = renderer.mjml(kind, locale, sample)
    fault = markup.structure_fault(produced)
    if fault is None:
        return None
    line = markup.line_at(produced, fault.offset)
    return _traced(where, where.kind_file(kind), produced, line, fault.message)


def _traced(where: _Where, file: Path, produced: str, line: int, message: str) -> Problem:
    """A fault at ``line`` of the produced MJML, put at the template line that wrote it."""
    traced = sources.trace(where.templates_dir, file, produced, line)
    if traced is None:
        return Problem(file, 1, f"MJML: {message} (line {line} of the MJML this template produced)")
    return Problem(traced[0], traced[1], f"MJML: {message}")
