"""Turn a kind, a locale and a context into a finished mail: Jinja2 → MJML → HTML + text.

Everything that can be prepared once is: one Jinja environment per locale,
each template compiled once per (kind, locale), catalogs compiled once, and
the MJML of each shape of a template made HTML once (``compiled``): a mail
of a known shape only fills in its values. A campaign's content and the
shop are the same for all its mail, so they are compiled in rather than
filled. The old per-mail path renders a shape's first mail (compared with
the compiled one) and every mail of a template that cannot be compiled.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import jinja2
import markupsafe
import mjml
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.utils import missing

from notifier import content, errors
from notifier.flows import newsletter_content
from notifier.mail import compiled, deferred, i18n, plaintext, translate
from notifier.vocabulary import TemplateFault

DEFAULT_TEMPLATES_DIR = content.TEMPLATES_DIR
"""The project's templates, packaged or the checkout's; ``NOTIFIER_TEMPLATES_DIR`` overrides."""

SUFFIX = ".mjml.j2"
"""Every template file ends so; a kind is a top-level file's name without it."""

NOT_KINDS = frozenset({"layout"})
"""Top-level templates that are shared by the kinds rather than kinds themselves."""

_MJML_POSITION = re.compile(r"at position (\d+):(\d+)")
_TAG_ATTRIBUTES = re.compile(r"<!--.*?-->|(<[A-Za-z][\w:-]*) (?=[A-Za-z])", re.DOTALL)
"""A comment (kept as it is), or the space after a tag's name, where its attributes begin
(``_fold_tags``)."""
_TAG_WITH_BACKSLASH = re.compile(r"<[A-Za-z][^<>]*\\[^<>]*>")
_ATTRIBUTE_VALUE = re.compile(r'="([^"]*)"')
_RUST_ESCAPE = re.compile(r"\\(?:u\{([0-9a-f]{1,6})\}|(.))")
_RUST_ESCAPED = {"t": "\t", "n": "\n", "r": "\r", "0": "\0", '"': "&quot;"}
"""Escapes meaning another character than their letter; any other (``\\\\``) is the letter."""

LINE_BLOCKS = ("subject", "preheader")
"""Blocks that are a line of plain text besides their place in the mail."""

COMPILED_IN = ("shop", "newsletter", newsletter_content.FALLBACK_KEY)
"""Context keys alike for many mails (the shop, a campaign's content): compiled in, not filled."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class RenderedMail:
    """A mail ready to be put into an email message."""

    subject: str
    preheader: str
    html: str
    """The full HTML document, with ``<html lang="…">`` naming ``locale``."""
    text: str
    """The plain-text alternative, made from the HTML with its links kept."""
    locale: str
    """The locale actually used after negotiation, e.g. ``nl`` for ``nl_BE``."""


class Renderer:
    """Renders the templates in one directory with the catalogs in another.

    A Renderer reads the list of kinds and locales when it is made and keeps
    what it compiles; build a new one to pick up edited templates or catalogs.
    It is safe to share between threads.
    """

    def __init__(
        self,
        templates_dir: Path,
        locales_dir: Path,
        default_locale: str = "nl",
        timezone: str = "Europe/Amsterdam",
        *,
        compile_shapes: bool = True,
    ) -> None:
        self.templates_dir = templates_dir.resolve()
        self.compile_shapes = compile_shapes
        """False renders every mail per mail (the path the compiled one is checked against)."""
        self.default_locale = default_locale
        self.timezone = timezone
        self.catalogs = i18n.Catalogs(locales_dir)
        self._kinds = sorted(
            path.name.removesuffix(SUFFIX)
            for path in self.templates_dir.glob(f"*{SUFFIX}")
            if path.name.removesuffix(SUFFIX) not in NOT_KINDS
        )
        self._locales = self.catalogs.available()
        self._environments: dict[str, jinja2.Environment] = {}
        self._templates: dict[tuple[str, str], jinja2.Template] = {}
        self._lock = threading.RLock()
        self._loader = _RecordingLoader(self.templates_dir)
        self._stages: dict[str, jinja2.Environment] = {}
        self._tracing: deferred.Trace | None = None
        self._trace_lock = threading.RLock()
        self._shapes = compiled.Shapes()
        self._constants: dict[str, tuple[object, str]] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        """Mails by path: ``filled`` (compiled, mrml skipped), ``filled_mrml`` (compiled, a value
        with markup sent the MJML through mrml), ``per_mail``."""

    def kinds(self) -> list[str]:
        """The kinds that have a template, sorted."""
        return list(self._kinds)

    def locales(self) -> list[str]:
        """The locales that have a catalog, sorted."""
        return list(self._locales)

    def render(self, kind: str, locale: str | None, context: Mapping[str, Any]) -> RenderedMail:
        """Render ``kind`` in the best available locale for ``locale``.

        ``context`` must hold every variable the template uses (undefined ones
        are errors, never blanks). Raises TemplateError naming the file and,
        where known, the line for an unknown kind, a Jinja or MJML error, a
        missing subject or a broken catalog.
        """
        values, chosen = newsletter_content.localized(context, locale, self.default_locale)
        used = i18n.negotiate(locale, self._locales, self.default_locale)
        if chosen not in (None, newsletter_content.EVERYONE) and _language(chosen) != _language(
            used
        ):
            # Stand-in content (an English reader sent the Dutch text): the whole mail speaks
            # the content's language, so Content-Language, lang and the words around agree.
            used = i18n.negotiate(chosen, self._locales, self.default_locale)
        template = self._template(kind, used)
        name = kind + SUFFIX
        if "subject" not in template.blocks:
            raise errors.TemplateError(
                "the template has no subject block",
                file=name,
                reason=TemplateFault.NO_SUBJECT_BLOCK,
            )
        lines = [block for block in LINE_BLOCKS if block in template.blocks]
        if not self.compile_shapes or name in self._shapes.fallbacks:
            return self._render_each(template, name, values, lines, used)
        key = self._shape_key(kind, used, values)
        leaf = self._shapes.find(key, values)
        if leaf is None:
            return self._compile_shape(kind, template, name, values, lines, used)
        try:
            filled = leaf.fill(values)
        except Exception:  # this mail's data fails: the old path says how, with file and line
            return self._render_each(template, name, values, lines, used)
        return self._finish(filled, name, used)

    def version(self) -> str:
        """The digest of every template source read so far: compiled shapes are kept under it."""
        return self._loader.version

    def compiled_shapes(self) -> int:
        """How many shapes are compiled so far, all templates together."""
        return self._shapes.count()

    def fallbacks(self) -> dict[str, str]:
        """The template files rendered per mail rather than compiled once, and why."""
        return dict(self._shapes.fallbacks)

    def _render_each(
        self,
        template: jinja2.Template,
        name: str,
        values: dict[str, Any],
        lines: list[str],
        used: str,
    ) -> RenderedMail:
        """One mail the old way: Jinja, then mrml and the plain text of its MJML."""
        self.counts["per_mail"] += 1
        source, shown = self._guard(name, lambda: _render_showing(template, values, lines), values)
        found = {}
        for block in lines:
            text = shown.get(block)
            if text is None:  # the layout does not show this block: render it by itself
                alone = functools.partial(_render_block, template, block, values)
                text = "".join(self._guard(name, alone, values))
            found[block] = markupsafe.Markup(text).striptags()
        return _mail(name, found["subject"], found.get("preheader", ""), source, used)

    def _finish(self, filled: compiled.Filled, name: str, used: str) -> RenderedMail:
        """A compiled shape's filled parts as a mail, as ``_render_each`` would make it."""
        preheader = filled.preheader
        mail = _mail(
            name,
            markupsafe.Markup(filled.subject).striptags(),
            markupsafe.Markup(preheader).striptags() if preheader is not None else "",
            filled.source,
            used,
            html=filled.html,
            text=filled.text,
        )
        self.counts["filled" if filled.html is not None else "filled_mrml"] += 1
        if filled.text is None:
            self.counts["text_walked"] += 1
        return mail

    def _shape_key(self, kind: str, used: str, values: Mapping[str, Any]) -> tuple[object, ...]:
        """What a compiled shape is kept under, besides the answers to its questions."""
        constants = tuple(self._constant(key, values[key]) for key in COMPILED_IN if key in values)
        return (kind, used, self._loader.version, frozenset(values), constants)

    def _constant(self, key: str, value: object) -> str:
        """A digest of a compiled-in value; the last one per key is remembered by identity."""
        last = self._constants.get(key)
        if last is not None and last[0] is value:
            return last[1]
        digest = hashlib.blake2b(
            json.dumps(value, sort_keys=True, default=str).encode(), digest_size=16
        ).hexdigest()
        self._constants[key] = (value, digest)
        return digest

    def _compile_shape(
        self,
        kind: str,
        template: jinja2.Template,
        name: str,
        values: dict[str, Any],
        lines: list[str],
        used: str,
    ) -> RenderedMail:
        """Render a mail of a shape not seen yet the old way, and compile that shape from it.

        The compiled shape filled with this mail must give the very same mail,
        else the template is rendered per mail from now on.
        """
        mail = self._render_each(template, name, values, lines, used)
        key = self._shape_key(kind, used, values)  # its first render may have read more files
        try:
            traced = self._trace(template.name or name, used, values, lines)
        except deferred.NotCompilable as exc:
            self._shapes.refuse(name, str(exc))
            return mail
        except Exception:  # this mail's data trips the trace (not the template): not kept
            return mail
        leaf = self._shapes.add(key, name, traced, functools.partial(_to_html, name=name))
        if leaf is not None and not self._same(leaf, values, name, used, mail):
            self._shapes.refuse(name, "its compiled form differs from the mail rendered per mail")
        return mail

    def _same(
        self,
        leaf: compiled.Leaf,
        values: Mapping[str, Any],
        name: str,
        used: str,
        mail: RenderedMail,
    ) -> bool:
        try:
            return self._finish(leaf.fill(values), name, used) == mail
        except Exception:
            return False

    def _trace(
        self, name: str, used: str, values: Mapping[str, Any], lines: list[str]
    ) -> compiled.Traced:
        """Render ``name`` once with its per-mail values as placeholders (``deferred``)."""
        with self._trace_lock:
            environment = self._stage(used)
            trace = deferred.Trace(environment)
            self._tracing = trace
            try:
                template = environment.get_template(name)
                staged: dict[str, Any] = {
                    key: value for key, value in values.items() if key in COMPILED_IN
                }
                staged.update(trace.top({k: v for k, v in values.items() if k not in COMPILED_IN}))
                source, shown = _render_showing(template, staged, lines)
                for block in lines:
                    if block not in shown:
                        shown[block] = "".join(_render_block(template, block, staged))
            finally:
                self._tracing = None
        return trace, source, shown

    def _stage(self, locale: str) -> jinja2.Environment:
        """The tracing environment of ``locale``: as the real one, its functions deferring."""
        environment = self._stages.get(locale)
        if environment is None:
            environment = self._new_environment(locale)
            deferred.stage_environment(environment, lambda: self._tracing)
            self._stages[locale] = environment
        return environment

    def mjml(self, kind: str, locale: str | None, context: Mapping[str, Any]) -> str:
        """The MJML that ``render`` compiles for the same arguments, before it becomes HTML.

        Tools that explain an MJML error use it: mrml names a position in this
        text, not in the template files it was made from.
        """
        template = self._template(kind, i18n.negotiate(locale, self._locales, self.default_locale))
        values = dict(context)
        return self._guard(kind + SUFFIX, lambda: template.render(values), values)

    def compile_all(self) -> list[errors.TemplateError]:
        """Compile every template file, partials included, in every locale; return what failed.

        Done ahead so the first mail of each kind does not wait, and so that
        ``serve`` and ``worker`` can refuse to start on a file that would fail
        every mail it is in. The renderer itself goes on: a template that does
        not compile is left for ``render`` to report, message by message.
        """
        names = sorted(
            path.relative_to(self.templates_dir).as_posix()
            for path in self.templates_dir.rglob("*.j2")
        )
        found: dict[str, errors.TemplateError] = {}
        for locale in self._locales:
            try:
                environment = self._environment(locale)
            except errors.TemplateError as exc:  # its catalog cannot be read
                found.setdefault(str(exc), exc)
                continue
            for name in names:
                kind = name.removesuffix(SUFFIX)
                try:
                    if kind in self._kinds:
                        self._template(kind, locale)
                    else:
                        self._guard(name, functools.partial(environment.get_template, name))
                except errors.TemplateError as exc:
                    found.setdefault(str(exc), exc)
        return list(found.values())

    def template_errors(self) -> list[errors.TemplateError]:
        """Compile every template file, partials included, and return the syntax errors found.

        Rendering reaches only the files a context leads to; a check before
        shipping also wants the partial no sample includes yet.
        """
        environment = self._environment(self.default_locale)
        found: list[errors.TemplateError] = []
        for path in sorted(self.templates_dir.rglob("*.j2")):
            name = path.relative_to(self.templates_dir).as_posix()
            try:
                self._guard(name, functools.partial(environment.get_template, name))
            except errors.TemplateError as exc:
                found.append(exc)
        return found

    def _template(self, kind: str, locale: str) -> jinja2.Template:
        """The compiled template of ``kind`` for ``locale``, from the cache after the first time."""
        key = (kind, locale)
        template = self._templates.get(key)
        if template is not None:
            return template
        if kind not in self._kinds:
            raise errors.TemplateError(
                f"unknown kind {kind!r}", file=kind + SUFFIX, reason=TemplateFault.UNKNOWN_KIND
            )
        environment = self._environment(locale)
        template = self._guard(kind + SUFFIX, lambda: environment.get_template(kind + SUFFIX))
        with self._lock:
            return self._templates.setdefault(key, template)

    def _environment(self, locale: str) -> jinja2.Environment:
        """The Jinja environment for ``locale``, with its translations and filters installed."""
        with self._lock:
            environment = self._environments.get(locale)
            if environment is None:
                environment = self._new_environment(locale)
                self._environments[locale] = environment
            return environment

    def _new_environment(self, locale: str) -> jinja2.Environment:
        """A fresh environment: strict about undefined names, escaping everything by default."""
        environment = jinja2.Environment(
            loader=self._loader,
            undefined=_Undefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm", "xml", "mjml", "j2"), default=True
            ),
            extensions=["jinja2.ext.i18n"],
            auto_reload=False,
            cache_size=-1,
        )
        # Whitespace inside {% trans %} is collapsed, as babel.cfg asks the extractor to do,
        # so the msgids in the catalogs match what the templates look up.
        environment.policies["ext.i18n.trimmed"] = True
        # The i18n extension adds this method at run time, so type checkers cannot see it.
        translations = self.catalogs.translations(locale)
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            translations, newstyle=True
        )
        translate.TemplateGettext(translations, self.catalogs.msgids(locale)).install(environment)
        environment.filters.update(
            (name, _strict(format_))
            for name, format_ in i18n.filters(locale, self.timezone).items()
        )
        environment.filters["nl2br"] = nl2br
        environment.tests["given"] = given
        environment.globals["html_lang"] = locale.replace("_", "-")
        return environment

    def _guard(
        self, name: str, step: Callable[[], _T], context: Mapping[str, Any] | None = None
    ) -> _T:
        """Run a Jinja step, turning whatever goes wrong into a TemplateError with file and line.

        An undefined value's error also says, as ``missing``, which path of
        ``context`` it was.
        """
        try:
            return step()
        except errors.TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise errors.TemplateError(
                exc.message or "syntax error",
                file=exc.name or name,
                line=exc.lineno,
                reason=TemplateFault.SYNTAX,
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise errors.TemplateError(
                f"template not found: {exc.name}", file=name, reason=TemplateFault.NOT_FOUND
            ) from exc
        except Exception as exc:
            file, line = self._where(exc.__traceback__)
            absent, what, reason = None, type(exc).__name__, TemplateFault.RUNTIME
            if isinstance(exc, jinja2.UndefinedError):
                reason = TemplateFault.UNDEFINED
            if isinstance(exc, UndefinedValue):
                absent, what = _missing_path(exc, context or {}), "UndefinedError"
            raise errors.TemplateError(
                f"{what}: {exc}", file=file or name, line=line, reason=reason, missing=absent
            ) from exc

    def _where(self, traceback: TracebackType | None) -> tuple[str | None, int | None]:
        """The innermost template file and line in a traceback Jinja has rewritten."""
        file: str | None = None
        line: int | None = None
        root = str(self.templates_dir) + os.sep
        while traceback is not None:
            filename = os.path.normpath(traceback.tb_frame.f_code.co_filename)
            if filename.startswith(root):
                file, line = Path(filename[len(root) :]).as_posix(), traceback.tb_lineno
            traceback = traceback.tb_next
        return file, line


class _RecordingLoader(jinja2.FileSystemLoader):
    """The templates directory's loader; ``version`` digests every source it has served.

    A compiled shape is kept under it, so no shape outlives the text it was made from.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self._served: dict[str, str] = {}
        self.version = ""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        digest = hashlib.blake2b(source.encode(), digest_size=16).hexdigest()
        if self._served.get(template) != digest:
            self._served[template] = digest
            self.version = hashlib.blake2b(
                repr(sorted(self._served.items())).encode(), digest_size=16
            ).hexdigest()
        return source, filename, uptodate


def _render_showing(
    template: jinja2.Template, values: dict[str, Any], blocks: list[str]
) -> tuple[str, dict[str, str]]:
    """The whole template, and what each of ``blocks`` wrote the first time the layout showed it.

    The subject and the preheader are shown in the mail (the title, the
    hidden preview) and needed apart as well: kept as they are written,
    rather than rendered twice more (a twentieth of rendering a mail).
    """
    context = template.new_context(values)
    shown: dict[str, str] = {}
    for block in blocks:
        stack = context.blocks[block]
        stack[0] = _showing(stack[0], block, shown)
    try:
        source: str = template.environment.concat(template.root_render_func(context))
    except Exception:
        # Rewrites the traceback so it shows template lines, as Template.render does.
        template.environment.handle_exception()
    return source, shown


def _showing(
    render_block: Callable[[Context], Iterator[str]], block: str, shown: dict[str, str]
) -> Callable[[Context], Iterator[str]]:
    """``render_block``, keeping in ``shown`` what it writes on its first call."""

    def render(context: Context) -> Iterator[str]:
        if block in shown:
            yield from render_block(context)
            return
        pieces = list(render_block(context))
        shown[block] = "".join(pieces)
        yield from pieces

    return render


def _render_block(template: jinja2.Template, block: str, values: dict[str, Any]) -> list[str]:
    """One block by itself, as the layout would show it."""
    context = template.new_context(values)
    try:
        return list(template.blocks[block](context))
    except Exception:
        template.environment.handle_exception()


class UndefinedValue(jinja2.UndefinedError):
    """A template used a value its context lacks; ``owner`` is what it was looked up on."""

    def __init__(self, message: str | None = None, *, owner: Any, name: object) -> None:
        super().__init__(message)
        self.owner = owner
        self.name = name


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose error carries its name and owner as data, not only in its text.

    Jinja rewrites the traceback of a template error, dropping the frame of
    the Undefined that raised, so the error itself has to say.
    """

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = jinja2.UndefinedError,
    ) -> None:
        if exc is jinja2.UndefinedError:
            # Jinja calls this with the message alone; a partial is not a type, but is called so.
            exc = cast(
                "type[TemplateRuntimeError]",
                functools.partial(UndefinedValue, owner=obj, name=name),
            )
        super().__init__(hint, obj, name, exc)


def _missing_path(error: UndefinedValue, context: Mapping[str, Any]) -> str | None:
    """The dotted path in ``context`` of the value ``error`` found missing.

    The owner is found in the context by identity, so ``{% set address =
    order.shipping_address %}`` then ``address.name`` is still
    ``order.shipping_address.name``. The bare name when the owner is not in
    the context (a value the template made itself); None for a hint-only error.
    """
    if error.name is None:
        return None
    name = str(error.name)
    if error.owner is missing:
        return name
    parent = _path_of(error.owner, context, "")
    return f"{parent}.{name}" if parent else name


def _path_of(target: object, value: object, path: str) -> str | None:
    """Where ``target`` is (by identity) inside ``value``, as a dotted path below ``path``."""
    if value is target and path:
        return path
    items: Iterator[tuple[str, object]]
    if isinstance(value, Mapping):
        items = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for below, item in items:
        found = _path_of(target, item, below)
        if found is not None:
            return found
    return None


def _strict(format_: Callable[..., str]) -> Callable[..., str]:
    """``format_``, failing as undefined when given an undefined value.

    Else ``{{ order.total|money(…) }}`` without a total says "not a decimal
    number: Undefined", and nothing names the field the shop left out.
    """

    @functools.wraps(format_)
    def strict(value: object, /, *args: Any, **kwargs: Any) -> str:
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return format_(value, *args, **kwargs)

    return strict


def given(value: object) -> bool:
    """The ``given`` test: the context holds a value here, not an undefined, null or empty one.

    Templates guard each optional field of the kinds table with it
    (``{% if data.carrier is given %}``): the shop may leave such a field
    out, send it as null, or send an empty list of lines.
    """
    if value is None or isinstance(value, jinja2.Undefined):
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, Sized):
        return len(value) > 0
    return True


def nl2br(value: str) -> markupsafe.Markup:
    """Escape free text and keep its line breaks, for text customers or staff typed."""
    lines = markupsafe.escape(value.strip()).splitlines()
    return markupsafe.Markup("<br />\n").join(lines)


def _to_html(source: str, name: str) -> str:
    """Compile MJML to HTML; an MJML error names the line of the generated MJML."""
    try:
        html = mjml.mjml2html(source, disable_comments=True, fonts={})
        return _fold_tags(_unescape_attributes(html))
    except ValueError as exc:
        message = f"MJML: {exc}"
        line: int | None = None
        position = _MJML_POSITION.search(str(exc))
        if position is not None:
            start, end = (int(group) for group in position.groups())
            raw = source.encode()
            line = raw[:start].decode(errors="replace").count("\n") + 1
            snippet = raw[start:end].decode(errors="replace")
            message += f" (line {line} of the generated MJML: {snippet!r})"
        raise errors.TemplateError(
            message, file=name, reason=TemplateFault.MJML, mjml_line=line, detail=str(exc)
        ) from exc


def _mail(
    name: str,
    subject: str,
    preheader: str,
    source: str,
    used: str,
    *,
    html: str | None = None,
    text: str | None = None,
) -> RenderedMail:
    """The mail both paths make: its MJML ``source`` made HTML and text unless they are given.

    An empty subject is an error of the template, whichever path found it.
    """
    if not subject:
        raise errors.TemplateError(
            "the subject is empty", file=name, reason=TemplateFault.EMPTY_SUBJECT
        )
    return RenderedMail(
        subject=subject,
        preheader=preheader,
        html=html if html is not None else _to_html(source, name),
        text=text if text is not None else plaintext.to_text(source),
        locale=used,
    )


def _fold_tags(html: str) -> str:
    """The body with each tag's attributes begun on a line of their own.

    mrml writes the whole body on one line (6 to 25 KB here), and a line over
    998 octets cannot travel 8bit (RFC 5322 §2.1.1), so every such mail went
    quoted-printable. A line end between a tag's name and its attributes is
    the same whitespace to every HTML parser, no text moves, and the size is
    unchanged; comments (Outlook's conditional ones) are left as they are. The
    rule looks at nothing but the tag itself, so a compiled shape folded once
    and then filled is the mail folded after filling.
    """
    body = html.find("<body")
    if body < 0:
        return html
    return html[:body] + _TAG_ATTRIBUTES.sub(_fold_tag, html[body:])


def _fold_tag(found: re.Match[str]) -> str:
    name = found.group(1)
    return found.group() if name is None else name + "\n"


def _unescape_attributes(html: str) -> str:
    """Undo the Rust escaping mrml writes into attribute values, so they say what the MJML said.

    mrml (mjml-python 1.4) writes each attribute value as Rust's ``escape_debug``
    would: a ``style`` typed over two lines gets a literal ``\\n`` in its CSS,
    the no-break space in a price ``\\u{a0}`` in an ``alt``, a backslash two.
    Text between tags is written as it is, so only tags are looked at, and only
    in a mail that holds a backslash at all (few do: the check is a memchr).
    """
    if "\\" not in html:
        return html
    return _TAG_WITH_BACKSLASH.sub(_unescape_tag, html)


def _unescape_tag(tag: re.Match[str]) -> str:
    return _ATTRIBUTE_VALUE.sub(
        lambda value: '="' + _RUST_ESCAPE.sub(_unescape_character, value.group(1)) + '"',
        tag.group(),
    )


def _unescape_character(escape: re.Match[str]) -> str:
    code, letter = escape.groups()
    if code is not None:
        return chr(int(code, 16))
    return _RUST_ESCAPED.get(letter, letter)


def _language(locale: str | None) -> str:
    return (i18n.normalize(locale or "") or "").split("_")[0]
