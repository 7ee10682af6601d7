"""Reading MJML and HTML as text: the first tag-structure fault, and images without ``alt``.

mrml (behind mjml-python) reports a misplaced closing tag only where its
parser finally gives up, often in a later file, and drops unknown elements
without a word. This small scan of the tags finds the first real fault, so
``templates check`` can point at the line a marketer actually broke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ELEMENTS = frozenset(
    {
        "mjml",
        "mj-head",
        "mj-body",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-html-attribute",
        "mj-selector",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-raw",
        "mj-include",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    }
)
"""Every element MJML 4 knows; anything else starting with ``mj-`` is a typo."""

_OPENING = re.compile(r"<(/?)(mjml|mj-[A-Za-z0-9-]*)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE = re.compile(r"<(?:img|mj-image)\b(?:[^<>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_ALT = re.compile(r"\salt\s*=", re.IGNORECASE)


@dataclass(frozen=True)
class Fault:
    """What is wrong, and the offset in the scanned text where it is."""

    offset: int
    message: str


def line_at(text: str, offset: int) -> int:
    """The 1-based line number of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def structure_fault(source: str) -> Fault | None:
    """The first tag that breaks the MJML tree in ``source``, or None if the tags nest.

    Only MJML's own elements are followed (HTML inside ``mj-text`` is free
    form). A closing tag whose element is open further out means the inner
    element was never closed, so the fault is put at that element's opening
    tag; a closing tag with no open element at all is itself the fault.
    """
    text = _COMMENT.sub(lambda comment: " " * len(comment.group()), source)
    stack: list[tuple[str, int]] = []
    for match in _OPENING.finditer(text):
        closing, name = match.group(1) == "/", match.group(2)
        start = match.start()
        if name not in ELEMENTS:
            return Fault(start, f"unknown MJML element <{name}> (MJML drops it without a word)")
        end = _tag_end(text, match.end())
        if isinstance(end, Fault):
            return Fault(start, f"<{match.group(1)}{name}: {end.message}")
        if closing:
            names = [open_name for open_name, _ in stack]
            if name not in names:
                return Fault(start, f"</{name}> closes nothing: no <{name}> is open here")
            if names[-1] != name:
                inner, opened = stack[-1]
                return Fault(opened, f"<{inner}> is not closed (</{name}> comes first)")
            stack.pop()
        elif text[end - 2] != "/":
            stack.append((name, start))
    if stack:
        name, opened = stack[-1]
        return Fault(opened, f"<{name}> is never closed")
    return None


def _tag_end(text: str, index: int) -> int | Fault:
    """The offset just after the ``>`` ending the tag whose attributes start at ``index``."""
    while index < len(text):
        char = text[index]
        if char == ">":
            return index + 1
        if char == "<":
            return Fault(index, "the tag is not finished with '>'")
        if char in "\"'":
            close = text.find(char, index + 1)
            if close < 0 or "<" in text[index:close]:
                return Fault(index, f"an attribute value has no closing {char}")
            index = close
        index += 1
    return Fault(index, "the tag is not finished with '>'")


def images_without_alt(text: str) -> list[int]:
    """Offsets of every ``<img>`` or ``<mj-image>`` tag in ``text`` that has no ``alt``.

    An empty ``alt=""`` counts as present: it is how a decorative image says
    so to a screen reader.
    """
    return [match.start() for match in _IMAGE.finditer(text) if not _ALT.search(match.group())]
