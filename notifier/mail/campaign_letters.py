"""A newsletter made once per (campaign, locale, content version), then filled per recipient.

Every subscriber of a campaign gets the same mail but for the greeting's
first name and the one preferences token in the preferences and
unsubscribe links. So the mail is rendered once with stand-ins for them
(private-use characters no content holds), and each recipient's mail is
that blank with the stand-ins replaced: no Jinja, no mrml, no plain-text
walk per subscriber.

Byte-identical to rendering the mail itself by construction: the plain
text wraps at spaces by length, so a blank is kept per shape of what
varies (whether a first name is given, the lengths of its words, the
token's length), and filled only with names the renderer would have shown
as they are (printable, single spaces, no backslash: anything else is
rendered per mail). A blank that shows any other per-recipient value
(the customer's id or address, the message's key) is refused, and that
campaign's mail is rendered per mail.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal

import markupsafe

from notifier.mail.render import RenderedMail

NAME = "\ue010"
"""Each character of the first name's stand-in (one per character, words kept apart)."""
TOKEN = "\ue011"
"""Each character of the preferences token's stand-in."""
OTHER = "\ue012"
"""The stand-in of every per-recipient value a blank must not show (id, address, key)."""
_STAND_INS = re.compile("[\ue010-\ue012]")
_NAME_RUN = re.compile(f"{NAME}+")
_PLAIN_NAME = re.compile(r"[^\s\\\ue000-\uf8ff]+(?: [^\s\\\ue000-\uf8ff]+)*")
"""Words of printable characters between single spaces: what the text part shows unchanged."""
MAX_BLANKS = 1024
"""Blanks kept per renderer (campaigns x locales x name shapes); the oldest goes first."""

Key = tuple[object, ...]


@dataclasses.dataclass(frozen=True)
class Blank:
    """One campaign's mail in one locale, with stand-ins for the name and the token."""

    mail: RenderedMail
    name: str | None
    """The first name's stand-in as the blank shows it in the HTML; None: no name given."""
    token: str


def name_shape(first_name: object) -> tuple[int, ...] | Literal[False] | None:
    """The word lengths of a first name the blank can take; None for none given, False: no blank.

    "Given" as the templates' ``given`` test has it: a blank name is none.
    """
    if first_name is None or (isinstance(first_name, str) and not first_name.strip()):
        return None
    if not isinstance(first_name, str) or not first_name.isprintable():
        return False
    if _PLAIN_NAME.fullmatch(first_name) is None:
        return False
    return tuple(len(word) for word in first_name.split(" "))


def stand_in_name(shape: tuple[int, ...]) -> str:
    return " ".join(NAME * length for length in shape)


class CampaignLetters:
    """The blanks of the campaigns a worker sends, made on first use and kept."""

    def __init__(self) -> None:
        self._blanks: collections.OrderedDict[Key, Blank | None] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._last: tuple[object, str] | None = None
        self.counts: collections.Counter[str] = collections.Counter()
        """Mails by path: ``filled`` from a blank, ``blanks`` made, ``per_mail`` otherwise."""

    def content_version(self, context: Mapping[str, Any]) -> str:
        """A digest of a campaign's stored context; the last one is remembered by identity."""
        last = self._last
        if last is not None and last[0] is context:
            return last[1]
        digest = hashlib.blake2b(
            json.dumps(context, sort_keys=True, default=str).encode(), digest_size=16
        ).hexdigest()
        self._last = (context, digest)
        return digest

    def blank(
        self, key: Key, make: Callable[[], RenderedMail], name: str | None, token: str
    ) -> Blank | None:
        """The blank kept under ``key``, made by ``make`` with stand-ins ``name`` and ``token``
        if new; None when it cannot serve."""
        with self._lock:
            if key in self._blanks:
                self._blanks.move_to_end(key)
                return self._blanks[key]
        found = _checked(make(), name, token)
        self.counts["blanks"] += 1
        with self._lock:
            self._blanks[key] = found
            while len(self._blanks) > MAX_BLANKS:
                self._blanks.popitem(last=False)
        return found

    def fill(self, blank: Blank, first_name: str | None, token: str) -> RenderedMail:
        """The recipient's mail: the blank with their name and token in place of the stand-ins."""
        self.counts["filled"] += 1
        mail = blank.mail
        html = mail.html.replace(blank.token, token)
        text = mail.text.replace(blank.token, token)
        if blank.name is not None and first_name is not None:
            html = html.replace(blank.name, str(markupsafe.escape(first_name)))
            text = _NAME_RUN.sub(_words(first_name), text)
        return dataclasses.replace(mail, html=html, text=text)


def _words(name: str) -> Callable[[re.Match[str]], str]:
    """Each stand-in run in turn replaced by the name's next word (the text may wrap between)."""
    words = itertools.cycle(name.split(" "))
    return lambda _run: next(words)


def _checked(mail: RenderedMail, name: str | None, token: str) -> Blank | None:
    """The blank, if its stand-ins are all where a fill finds them and nothing else shows."""
    if OTHER in mail.html or OTHER in mail.text:
        return None
    if _STAND_INS.search(mail.subject) or _STAND_INS.search(mail.preheader):
        return None
    html = mail.html.replace(token, "")
    text = mail.text.replace(token, "")
    if name is not None:
        shown = html.count(name)
        html = html.replace(name, "")
        runs = [len(run) for run in _NAME_RUN.findall(text)]
        if shown == 0 or runs != [len(word) for word in name.split(" ")] * shown:
            return None
        text = _NAME_RUN.sub("", text)
    if _STAND_INS.search(html) or _STAND_INS.search(text):
        return None
    return Blank(mail, name, token)
