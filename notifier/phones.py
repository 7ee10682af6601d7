"""No phone number is ever stored: the fields named like one are dropped on arrival.

The shop promises its customers that their phone number is not used for
marketing, and notifier keeps none. A shop may still send one inside
``order``, an address, ``data``, a message's ``context`` or the customer
(extras are kept elsewhere), so every field whose *name* means a phone is
taken out of the request before it is validated, at any depth, whatever
its value. Only the field's path is reported (``order.shipping_address.phone``),
never its value.

A name means a phone when, folded (accents off, lower case) and cut into
words (``mobilePhone`` → ``mobile phone``, ``phone_number`` → ``phone number``):

- any word contains one of ``PHONE_STEMS`` (``phone``, ``telephone``,
  ``smartphone``, ``telefoon``, ``telefoonnummer``, ``telefon``, ``telefono``,
  ``téléphone``), or
- a word is one of ``PHONE_WORDS`` (``tel``, ``mobile``, ``mobiel``, ``gsm``,
  ``cell``, ``fax``, ``msisdn``, ``whatsapp``), alone or with a number suffix
  (``telnr``, ``mobilenumber``, ``gsmnummer``, ``faxno``).

Short words are matched whole, so ``hotel``, ``cancellation`` or
``automobile`` are not phones. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

PHONE_STEMS = ("phone", "telefoon", "telefon", "telephon")
"""Found inside any word: ``telephone``, ``cellphone``, ``telefoonnummer``, ``telefonnummer``,
``telefono`` (via ``telefon``)."""

PHONE_WORDS = frozenset(
    {
        "tel",
        "mobile",
        "mobiel",
        "mobil",
        "gsm",
        "cell",
        "cellular",
        "fax",
        "msisdn",
        "whatsapp",
    }
)
"""Matched as a whole word, bare or followed by one of ``_NUMBER_SUFFIXES``."""

_NUMBER_SUFFIXES = ("number", "nummer", "numero", "num", "nr", "no")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def means_phone(name: str) -> bool:
    """Whether a field called ``name`` holds a phone number (see the module docstring)."""
    folded = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    words = [word.lower() for word in _WORD.findall(folded)]
    for word in words:
        if any(stem in word for stem in PHONE_STEMS):
            return True
        if word in PHONE_WORDS:
            return True
        for suffix in _NUMBER_SUFFIXES:
            if word.endswith(suffix) and word[: -len(suffix)] in PHONE_WORDS:
                return True
    return False


def without_phones(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """``value`` with every phone-named field removed at any depth, and the paths removed.

    Dicts and lists are copied where something is removed, never changed in
    place; list items are named by index (``order.lines[2].phone``).
    """
    if isinstance(value, dict):
        found: list[str] = []
        kept: dict[Any, Any] = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and means_phone(key):
                found.append(where)
                continue
            kept[key], inner = without_phones(item, where)
            found += inner
        return (kept if found else value), found
    if isinstance(value, list):
        found = []
        items = []
        for index, item in enumerate(value):
            cleaned, inner = without_phones(item, f"{path}[{index}]")
            items.append(cleaned)
            found += inner
        return (items if found else value), found
    return value, []


def section(path: str) -> str:
    """The top-level part of a dropped field's path (``order``, ``data``, ``customer``), for the
    metric's label: a few values, never the customer's own field names."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def shape(path: str) -> str:
    """``path`` with list indexes folded (``order.lines[].phone``): one log line per shape."""
    return re.sub(r"\[\d+\]", "[]", path)
