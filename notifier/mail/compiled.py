"""Compile once, fill per mail: each template's MJML made HTML once per shape, not per mail.

A template is traced once (``deferred``) with the first mail of each shape:
the outcome of its conditions and the lengths of its loops, which ``Shapes``
keeps as a tree of questions per (kind, locale, template version, campaign
content, context keys). The leaf holds the MJML with placeholders, the HTML
mrml made of it once, and the program that computes a mail's values. A mail
of a known shape is then a walk down the tree, the program, and a few string
fills: no Jinja rendering and no MJML compilation.

Byte-identical by construction where it is used: the first mail of every
shape is also rendered the old way and the two compared, and a value that
mrml could have treated differently from its placeholder (markup, a
backslash) sends that mail's MJML through mrml. A template that cannot be
traced (``deferred.NotCompilable``) or whose shapes disagree is rendered per
mail, and ``fallbacks`` says which and why (``templates check --verbose``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier.mail import deferred

MAX_SHAPES = 256
"""Shapes kept per template and key; past that (orders of every length) mail renders per mail."""

_PLACEHOLDER = re.compile(f"{deferred.OPEN}([0-9]+)([{deferred.HTML}{deferred.RAW}])")
_UNSAFE_IN_HTML = re.compile(r"<(?!br />)|(?<!<br /)>|[\\\ue000-\ue002]")
"""A value holding these might come out of mrml otherwise than its placeholder did: markup
other than the ``<br />`` of ``nl2br`` (which mrml writes as it is), a backslash."""


@dataclass(frozen=True)
class Filled:
    """One mail's parts, as the old path would have made them."""

    subject: str
    """As the layout wrote it (markup); the renderer strips the tags."""
    preheader: str | None
    source: str
    """The MJML, for the plain-text part (and for mrml when ``html`` is None)."""
    html: str | None


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
        )


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
