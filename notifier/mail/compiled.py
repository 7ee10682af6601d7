"""Compile once, fill per mail: each template's MJML made HTML once per shape, not per mail.

A template is traced once (``deferred``) with the first mail of each shape:
the outcome of its conditions and the lengths of its loops, which ``Shapes``
keeps as a tree of questions per (kind, locale, template version, campaign
content, context keys). The leaf holds the MJML with placeholders, the HTML
mrml made of it once, the plain text laid out once (``TextShape``), and the
program that computes a mail's values. A mail of a known shape is then a
walk down the tree, the program, a few string fills and the text's wrapping:
no Jinja rendering, no MJML compilation and no parse of the MJML for its text.

Byte-identical by construction where it is used: the first mail of every
shape is also rendered the old way and the two compared, and a value that
mrml could have treated differently from its placeholder (markup, a
backslash) sends that mail's MJML through mrml. A template that cannot be
traced (``deferred.NotCompilable``) or whose shapes disagree is rendered per
mail, and ``fallbacks`` says which and why (``templates check --verbose``).
"""

from __future__ import annotations

import html as html_entities
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier.mail import deferred, plaintext

MAX_SHAPES = 256
"""Shapes kept per template and key; past that (orders of every length) mail renders per mail."""

_PLACEHOLDER = re.compile(f"{deferred.OPEN}([0-9]+)([{deferred.HTML}{deferred.RAW}])")
_UNSAFE_IN_HTML = re.compile(r"<(?!br />)|(?<!<br /)>|[\\\ue000-\ue002]")
"""A value holding these might come out of mrml otherwise than its placeholder did: markup
other than the ``<br />`` of ``nl2br`` (which mrml writes as it is), a backslash."""
_PLAIN_IN_TEXT = re.compile(r"[^<>&\r\x00-\x03\ue000-\ue002]*")
"""A value of only these characters reads in the text part as it is written."""
_MARKS_OR_RETURN = re.compile(r"[\r\x00-\x03\ue000-\ue002]")
"""What the text's parser would change (a CR) or the text's walk removes (its own marks)."""
_TAG = re.compile(r"<[^<>]*>")
_QUOTED_VALUE = re.compile(r"""([\w:.-]+)\s*=\s*("[^"]*"|'[^']*')""")
_ENTITY_OPEN_BEFORE = re.compile(f"&[A-Za-z0-9#]*{deferred.OPEN}")
"""A placeholder that might finish a character reference begun before it."""
_TABLE_CONTEXT = re.compile(
    r"<(?:mj-table|table|tbody|thead|tfoot|tr)\b[^<>]*>|</(?:td|th|tr|thead|tbody|tfoot|caption)>$"
)
"""Tags after which text is moved out of the table by the parser, unless it is blank."""


@dataclass(frozen=True)
class Filled:
    """One mail's parts, as the old path would have made them."""

    subject: str
    """As the layout wrote it (markup); the renderer strips the tags."""
    preheader: str | None
    source: str
    """The MJML, for mrml when ``html`` is None, and for the plain text when ``text`` is."""
    html: str | None
    text: str | None


class Filler:
    """A text with placeholders, ready to be filled with one mail's output strings."""

    __slots__ = ("_format", "_order")

    def __init__(self, text: str) -> None:
        pieces = _PLACEHOLDER.split(text)
        literal = [piece.replace("%", "%%") for piece in pieces[::3]]
        self._order = tuple(int(number) for number in pieces[1::3])
        self._format = "%s".join(literal)

    @property
    def order(self) -> tuple[int, ...]:
        """The outputs it shows, in order."""
        return self._order

    def fill(self, shown: list[str]) -> str:
        return self._format % tuple(shown[number] for number in self._order)


@dataclass(frozen=True)
class Leaf:
    """One shape of one template: its program and its texts with placeholders."""

    program: tuple[deferred.Step, ...]
    outputs: tuple[tuple[int, bool], ...]
    subject: Filler
    preheader: Filler | None
    source: Filler
    html: Filler
    in_html: frozenset[int]
    """The outputs the HTML shows: checked for what mrml might treat otherwise."""
    text: TextShape | None
    """The plain text laid out once; None where the source's placeholders sit where a value
    could change how it parses (``TextShape.of``), and the text is walked per mail."""

    def fill(self, values: Mapping[str, Any]) -> Filled:
        slots: list[Any] = []
        append = slots.append
        for step in self.program:
            append(step(slots, values))
        shown = [deferred.fill_value(slots[slot], html) for slot, html in self.outputs]
        source = self.source.fill(shown)
        html: str | None = None
        if not any(_UNSAFE_IN_HTML.search(shown[number]) for number in self.in_html):
            html = self.html.fill(shown)
        return Filled(
            subject=self.subject.fill(shown),
            preheader=self.preheader.fill(shown) if self.preheader is not None else None,
            source=source,
            html=html,
            text=self.text.fill(shown) if self.text is not None else None,
        )


@dataclass(frozen=True)
class TextShape:
    """A shape's plain text laid out once with placeholders, filled and written per mail.

    The walk of the MJML (parsing it, skipping what is hidden, finding links,
    cells and paragraphs) is the same for every mail of the shape, as long
    as no value changes how the MJML parses: so a value is put into the
    layout only where it reads as its own characters (escaped text, its
    entities decoded, ``nl2br``'s ``<br />`` a line break outside
    attributes); any other value makes that mail's text walked from its
    MJML. Wrapping, columns and link references, which depend on the
    words, are written per mail (``plaintext.Layout.text``).
    """

    layout: plaintext.Layout
    outputs: tuple[tuple[int, bool], ...]
    """The outputs the text shows, and whether each was written HTML-escaped."""
    in_attributes: frozenset[int]
    """The outputs shown inside a tag's attribute (a link's address, an image's ``alt``)."""
    wrapped: Mapping[str, str]
    """The template's own long lines (no value in them), wrapped once for every mail."""

    @classmethod
    def of(cls, source: str) -> TextShape | None:
        """The text shape of an MJML source with placeholders; None if it cannot be one."""
        if _ENTITY_OPEN_BEFORE.search(source):
            return None
        in_attributes: set[int] = set()
        for tag in _TAG.finditer(source):
            inside = tag.group()
            if deferred.OPEN not in inside:
                continue
            rest = inside
            for name, value in _QUOTED_VALUE.findall(inside):
                if deferred.OPEN in value:
                    if name.lower() == "style":  # a style may hide what follows it
                        return None
                    in_attributes.update(int(n) for n, _ in _PLACEHOLDER.findall(value))
                rest = rest.replace(value, "", 1)
            if deferred.OPEN in rest:  # in a tag's name or an unquoted attribute
                return None
        for placeholder in _PLACEHOLDER.finditer(source):
            before = source.rfind("<", 0, placeholder.start())
            end = source.find(">", before) + 1
            tag_before = source[before:end]
            between = source[end : placeholder.start()]
            if _TABLE_CONTEXT.search(tag_before) and not between.strip():
                return None  # text in a table's frame: a blank value would stay, others move
        layout = plaintext.layout(source)
        shown = {
            (int(number), marker == deferred.HTML)
            for text in layout.strings()
            for number, marker in _PLACEHOLDER.findall(text)
        }
        wrapped = {
            line: lines for line, lines in layout.long_lines().items() if deferred.OPEN not in line
        }
        return cls(layout, tuple(sorted(shown)), frozenset(in_attributes), wrapped)

    def fill(self, shown: list[str]) -> str | None:
        """The mail's plain text, or None when a value must be parsed with its MJML."""
        texts: dict[str, str] = {}
        for number, escaped in self.outputs:
            text = _as_text(shown[number], escaped, number in self.in_attributes)
            if text is None:
                return None
            texts[str(number)] = text

        def fill(text: str) -> str:
            if deferred.OPEN not in text:
                return text
            return _PLACEHOLDER.sub(lambda placeholder: texts[placeholder.group(1)], text)

        return self.layout.replace(fill).text(self.wrapped)


def _as_text(value: str, escaped: bool, in_attribute: bool) -> str | None:
    """What the MJML's parser reads for ``value`` as written into it; None when unsure.

    Only an escaped value's ``&`` is decoded here: markupsafe writes complete references
    (``&amp;``, ``&#39;``), which read alike in text and in attributes.
    """
    if _PLAIN_IN_TEXT.fullmatch(value):
        return value
    if not escaped or _MARKS_OR_RETURN.search(value):
        return None
    if not in_attribute:
        value = value.replace("<br />", plaintext.LINE_BREAK)
    if "<" in value or ">" in value:
        return None
    return html_entities.unescape(value)


@dataclass
class _Node:
    question: deferred.Question | None = None
    children: dict[object, _Node] = field(default_factory=dict)
    leaf: Leaf | None = None


Traced = tuple[deferred.Trace, str, dict[str, str]]
"""A trace, the MJML with placeholders and each line block as the layout showed it."""


class Shapes:
    """The compiled shapes of every template of one renderer, and the templates that fall back."""

    def __init__(self) -> None:
        self._roots: dict[tuple[object, ...], _Node] = {}
        self._counts: dict[tuple[object, ...], int] = {}
        self.fallbacks: dict[str, str] = {}
        """Template file → why it renders per mail."""
        self._lock = threading.Lock()

    def find(self, key: tuple[object, ...], values: Mapping[str, Any]) -> Leaf | None:
        """The leaf of this mail's shape, if one was compiled."""
        node = self._roots.get(key)
        while node is not None:
            if node.question is None:
                return node.leaf
            node = node.children.get(node.question(values))
        return None

    def add(
        self,
        key: tuple[object, ...],
        name: str,
        traced: Traced,
        to_html: Callable[[str], str],
    ) -> Leaf | None:
        """Compile a traced shape and keep it; None when this template is past its shapes."""
        trace, source, shown = traced
        with self._lock:
            if self._counts.get(key, 0) >= MAX_SHAPES:
                return None
            html = to_html(source)
            placeholders = set(_PLACEHOLDER.findall(html))
            leaf = Leaf(
                program=tuple(trace.program),
                outputs=tuple(trace.outputs),
                subject=Filler(shown["subject"]),
                preheader=Filler(shown["preheader"]) if "preheader" in shown else None,
                source=Filler(source),
                html=Filler(html),
                in_html=frozenset(int(number) for number, _ in placeholders),
                text=TextShape.of(source),
            )
            node = self._roots.setdefault(key, _Node())
            for question, answer in trace.questions:
                if node.question is None:
                    node.question = question
                node = node.children.setdefault(answer, _Node())
            if node.question is not None:  # a shorter path than an earlier run's: not deterministic
                self.fallbacks[name] = "its conditions are not the same from mail to mail"
                return None
            node.leaf = leaf
            self._counts[key] = self._counts.get(key, 0) + 1
            return leaf

    def count(self) -> int:
        return sum(self._counts.values())

    def refuse(self, name: str, reason: str) -> None:
        """``name`` renders per mail from now on, for ``reason``."""
        with self._lock:
            self.fallbacks.setdefault(name, reason)
