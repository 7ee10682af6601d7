"""The plain-text part of a mail, made from the MJML its template rendered.

A mail's text part is what a screen reader, a watch or a cautious mail
client shows, so it must read as prose: paragraphs wrapped at 78 characters,
tables as aligned columns (figures right-aligned beside the last line of
their row, where an order line's "2 x € 34,95" stands), the address as
lines, images as their alt text, and every link kept as a numbered reference
listed at the end — the unsubscribe link above all, never broken: a word or
address longer than a line stands on a line of its own.

The MJML is parsed by lexbor (selectolax), a fast and forgiving HTML5 parser
in C, and walked once into a ``Layout`` (prose with marks, links, tables);
the text is then written from it. A compiled shape keeps its template's
layout and fills it per mail (``mail.compiled.TextShape``), so most mail is
never parsed for its text. This replaced html2text, which produced Markdown
(its escapes had to be undone) and cost 2.4 ms a mail, two thirds of rendering.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

_LINE = "\x00"
"""A line ends here, unless one just did."""
_PARAGRAPH = "\x01"
"""A paragraph ends here: one blank line, however many blocks end together."""
LINE_BREAK = "\x02"
"""A line break typed as <br>: kept while the spaces around it are collapsed."""
_TABLE = "\x03"
"""Around the number of a table laid out apart, put in after the prose is wrapped."""
_TABLE_AT = re.compile(f"{_TABLE}([0-9]+){_TABLE}")
_MARKS = re.compile(f"[{_LINE}{_PARAGRAPH}{LINE_BREAK}{_TABLE}]")
"""The marks are control characters no mail text needs; any in the input are dropped."""
_HIDDEN = '[style*="display:none"], [style*="display: none"]'
"""Content styled away (a preheader) is for the inbox list, not for reading."""
_BREAKS = re.compile(r"[\x00\x01\n][ \n\x00\x01]*")
"""A run of line ends and marks; starting at one (not at a space) keeps the search in C."""
_BLANK_LINES = re.compile(r"\n{3,}")
WIDTH = 78
"""RFC 5322 §2.1.1's advice for a line, and what a text mail client shows without wrapping."""
_GAP = "  "

_SKIPPED = frozenset(
    {"mj-head", "head", "style", "script", "title", "template", "-comment", "mj-style"}
)
_BLOCKS = frozenset(
    {
        "p", "div", "table", "section", "article", "header", "footer", "blockquote", "pre",
        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "hr", "center", "address",
    }
)  # fmt: skip
_LINES = frozenset({"tr", "li", "dt", "dd"})
_CELLS = frozenset({"td", "th"})
_LINK_TAGS = frozenset({"a", "mj-button"})
_IMAGE_TAGS = frozenset({"img", "mj-image"})


def to_text(mjml: str) -> str:
    """The readable plain text of an MJML document (or of plain HTML)."""
    return layout(mjml).text()


def layout(mjml: str) -> Layout:
    """The document's text laid out, before wrapping: parsed and walked once."""
    body = _without_head(mjml)
    # Looking is a few microseconds; str.translate or a regex over every mail cost 0.3 ms.
    if _LINE in body or _PARAGRAPH in body or LINE_BREAK in body or _TABLE in body:
        body = _MARKS.sub("", body)
    # An HTML5 parser drops <tr> and <td> outside a <table>, so mj-table becomes one first.
    body = body.replace("<mj-table", "<table").replace("</mj-table", "</table")
    parser = LexborHTMLParser(body)
    for hidden in parser.css(_HIDDEN):
        hidden.decompose()
    root = parser.root
    return Layout(_laid_out(root) if root is not None else ())


def _without_head(mjml: str) -> str:
    """The MJML without its head: it only styles, and its ``<mj-table />`` would open a table."""
    start = mjml.find("<mj-head>")
    end = mjml.find("</mj-head>", start)
    if start < 0 or end < 0:
        return mjml
    return mjml[:start] + mjml[end + len("</mj-head>") :]


@dataclass(frozen=True, slots=True)
class _Link:
    """A link: its words, and the address they get a numbered reference to."""

    nodes: tuple[_Node, ...]
    href: str
    block: bool
    """A button: a paragraph of its own."""


@dataclass(frozen=True, slots=True)
class _Table:
    """A table's rows of cells, laid out in columns once their text is known."""

    rows: tuple[tuple[tuple[_Node, ...], ...], ...]


_Node = str | _Link | _Table


class Layout:
    """A document's text as its walk found it: prose with marks, links and tables.

    What depends on the words (wrapping, the columns' widths, which links
    share a reference) is decided by ``text``, so a layout made once from a
    template with placeholders (``mail.compiled``) can be filled per mail
    with ``replace`` and written as the walk of that mail would have been.
    """

    __slots__ = ("_nodes",)

    def __init__(self, nodes: tuple[_Node, ...]) -> None:
        self._nodes = nodes

    def strings(self) -> list[str]:
        """Every string the text is made of (prose, link addresses), in order."""
        found: list[str] = []
        _strings(self._nodes, found)
        return found

    def replace(self, change: Callable[[str], str]) -> Layout:
        """The same layout with every string (prose and link addresses) put through ``change``."""
        return Layout(_replaced(self._nodes, change))

    def text(self, wrapped: Mapping[str, str] | None = None) -> str:
        """The text: prose wrapped, tables in columns, the links' references appended.

        ``wrapped`` holds lines already wrapped (``long_lines`` of the template's layout),
        so that only the lines a mail's values are in go through textwrap again.
        """
        writer = _Writer(wrapped or {})
        writer.play(self._nodes)
        return writer.result()

    def long_lines(self) -> dict[str, str]:
        """Each of the text's lines too long to stand as it is, and the lines it is wrapped to."""
        writer = _Writer({})
        writer.play(self._nodes)
        lines = writer.text(wrap=False).split("\n")
        return {line: _wrap(line) for line in lines if len(line) > WIDTH}


def _laid_out(node: LexborNode) -> tuple[_Node, ...]:
    """The walk of ``node``'s children, consecutive strings joined."""
    nodes: list[_Node] = []
    _walk(node, nodes)
    joined: list[_Node] = []
    for item in nodes:
        if type(item) is str and joined and type(joined[-1]) is str:
            joined[-1] += item
        else:
            joined.append(item)
    return tuple(joined)


def _walk(node: LexborNode, out: list[_Node]) -> None:
    for child in node.iter(include_text=True):
        tag = child.tag or ""
        if tag == "-text":
            out.append(child.text_content or "")
        elif tag in _SKIPPED:
            continue
        elif tag == "br":
            out.append(LINE_BREAK)
        elif tag in _IMAGE_TAGS:
            out.append(child.attributes.get("alt") or "")
            _walk(child, out)  # a self-closed mj-image still parents what follows it
        elif tag in _LINK_TAGS:
            href = (child.attributes.get("href") or "").strip()
            out.append(_Link(_laid_out(child), href, tag == "mj-button"))
        elif tag == "table":
            out.append(_Table(tuple(_row(row) for row in child.css("tr"))))
        elif tag in _CELLS:
            _walk(child, out)
            out.append(" ")
        elif tag in _LINES:
            out.append(_LINE)
            if tag == "li":
                out.append("- ")
            _walk(child, out)
            out.append(_LINE)
        elif tag in _BLOCKS or tag.startswith("mj-"):
            out.append(_PARAGRAPH)
            _walk(child, out)
            out.append(_PARAGRAPH)
        else:
            _walk(child, out)


def _row(row: LexborNode) -> tuple[tuple[_Node, ...], ...]:
    return tuple(_laid_out(cell) for cell in row.iter() if cell.tag in _CELLS)


def _strings(nodes: tuple[_Node, ...], found: list[str]) -> None:
    for node in nodes:
        if type(node) is str:
            found.append(node)
        elif type(node) is _Link:
            _strings(node.nodes, found)
            found.append(node.href)
        elif type(node) is _Table:
            for row in node.rows:
                for cell in row:
                    _strings(cell, found)


def _replaced(nodes: tuple[_Node, ...], change: Callable[[str], str]) -> tuple[_Node, ...]:
    out: list[_Node] = []
    for node in nodes:
        if type(node) is str:
            out.append(change(node))
        elif type(node) is _Link:
            # An address is read stripped (``_walk``); a value may bring spaces to its ends.
            href = change(node.href).strip()
            out.append(_Link(_replaced(node.nodes, change), href, node.block))
        elif type(node) is _Table:
            rows = tuple(tuple(_replaced(cell, change) for cell in row) for row in node.rows)
            out.append(_Table(rows))
    return tuple(out)


class _Writer:
    """Writes a layout's text; links become numbered references."""

    def __init__(self, wrapped: Mapping[str, str]) -> None:
        self.pieces: list[str] = []
        self.links: list[str] = []
        self.tables: list[str] = []
        self._wrapped = wrapped

    def play(self, nodes: tuple[_Node, ...]) -> None:
        for node in nodes:
            if type(node) is str:
                self.pieces.append(node)
            elif type(node) is _Link:
                self._link(node)
            elif type(node) is _Table:
                self._table(node)

    def _link(self, link: _Link) -> None:
        """The link's words, then ``[n]`` for its address unless the words are the address."""
        start = len(self.pieces)
        if link.block:
            self.pieces.append(_PARAGRAPH)
        self.play(link.nodes)
        href = link.href
        words = " ".join("".join(self.pieces[start:]).split())
        if href and not href.startswith("#") and href.removeprefix("mailto:") != words:
            if href not in self.links:
                self.links.append(href)
            self.pieces.append(f" [{self.links.index(href) + 1}]")
        if link.block:
            self.pieces.append(_PARAGRAPH)

    def _table(self, table: _Table) -> None:
        """The table laid out in columns, kept apart until the prose around it is wrapped."""
        rows = [[self._cell(cell) for cell in row] for row in table.rows]
        self.pieces += [_PARAGRAPH, f"{_TABLE}{len(self.tables)}{_TABLE}", _PARAGRAPH]
        self.tables.append(_columns([row for row in rows if any(row)]))

    def _cell(self, nodes: tuple[_Node, ...]) -> list[str]:
        """A cell's lines; its links numbered with the mail's own."""
        writer = _Writer(self._wrapped)
        writer.links = self.links
        writer.play(nodes)
        text = writer.text(wrap=False)  # _columns wraps it to the column
        return text.split("\n") if text else []

    def text(self, *, wrap: bool = True) -> str:
        """Lines trimmed and wrapped, blank lines between paragraphs made single."""
        # str.split() collapses whitespace (no-break spaces too) faster than a regex would.
        text = " ".join("".join(self.pieces).split()).replace(LINE_BREAK, "\n")
        # Spaces are single now, and a run eats those after it: one before it may be left.
        text = _BREAKS.sub(_break, text).replace(" \n", "\n")
        text = _BLANK_LINES.sub("\n\n", text).strip()
        if wrap and any(len(line) > WIDTH for line in text.split("\n")):
            known = self._wrapped
            text = "\n".join(known.get(line) or _wrap(line) for line in text.split("\n"))
        return _TABLE_AT.sub(lambda at: self.tables[int(at.group(1))], text)

    def result(self) -> str:
        """The text with the references appended."""
        body = self.text()
        if self.links:
            references = "\n".join(_wrap(f"[{n}] {href}") for n, href in enumerate(self.links, 1))
            body = f"{body}\n\n{references}"
        return body + "\n"


def _fill(line: str, width: int) -> list[str]:
    """``line`` broken at spaces into lines of at most ``width`` (a longer word stays whole)."""
    return textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""]


def _wrap(line: str) -> str:
    """``line`` in lines of at most ``WIDTH``, broken only at spaces (never in a link)."""
    if len(line) <= WIDTH:
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(
        line,
        WIDTH,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _columns(rows: list[list[list[str]]]) -> str:
    """Rows of cells (each a list of lines) as aligned text columns at most ``WIDTH`` wide.

    The first column is left-aligned and wrapped to the room the others
    leave; the others are right-aligned, at the bottom of their row. A row
    with fewer cells (a total under ``colspan``) fills the right-hand columns
    and widens its first cell over the rest.
    """
    if not rows:
        return ""
    count = max(len(row) for row in rows)
    widths = [0] * count
    for row in rows:
        for index, cell in enumerate(row[1:], count - len(row) + 1):
            widths[index] = max([widths[index], *map(len, cell)])
    room = max(WIDTH - sum(widths[1:]) - len(_GAP) * (count - 1), WIDTH // 3)
    widths[0] = min(room, max(len(line) for row in rows for line in row[0] or [""]))
    lines: list[str] = []
    for row in rows:
        span = count - len(row)
        width = sum(widths[: span + 1]) + len(_GAP) * span
        first = [part for line in row[0] for part in _fill(line, width)]
        others = row[1:]
        height = max([len(first), *map(len, others)])
        first += [""] * (height - len(first))
        for at in range(height):
            parts = [first[at].ljust(width)]
            for index, cell in enumerate(others, span + 1):
                below = at - (height - len(cell))
                parts.append((cell[below] if below >= 0 else "").rjust(widths[index]))
            lines.append(_GAP.join(parts).rstrip())
    return "\n".join(lines)


def _break(run: re.Match[str]) -> str:
    """A run of break marks, line ends and spaces as newlines; line breaks typed with <br> count."""
    marks = run.group()
    return "\n\n" if _PARAGRAPH in marks else "\n" * max(1, marks.count("\n"))
