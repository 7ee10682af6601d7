"""The sample data each kind is previewed, checked and test-sent with (``templates/samples/``).

A sample is the full context a template sees, as the engine would build it,
so a marketer can preview a template without a shop or a database.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from notifier import errors
from notifier.flows import kinds

FOLDER = "samples"
"""Where the samples live inside the templates directory: ``samples/<kind>.json``."""

ASSEMBLED = frozenset({"customer", "shop", "links", "message"})
"""Context keys the engine fills in itself when it sends; a sample holds them for previews only."""

LOCALES = "locales"
"""A sample's per-locale content: ``{"en": {"newsletter": {…}}}`` replaces those keys in ``en``."""


def path(templates_dir: Path, kind: str) -> Path:
    """The sample file of ``kind``."""
    return templates_dir / FOLDER / f"{kind}.json"


def load(file: Path) -> dict[str, Any]:
    """Read one sample; a missing file or bad JSON raises TemplateError naming file and line.

    The error carries the line because a marketer edits these files by hand
    and a JSON parser's "column 1234" alone is no help in an editor.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise errors.TemplateError("no such sample file", file=str(file)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.TemplateError(f"cannot read the sample: {exc}", file=str(file)) from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.TemplateError(
            f"not valid JSON: {exc.msg}", file=str(file), line=exc.lineno
        ) from exc
    if not isinstance(value, dict):
        raise errors.TemplateError("a sample must be a JSON object {…}", file=str(file), line=1)
    return value


def for_locale(sample: dict[str, Any], locale: str) -> dict[str, Any]:
    """The sample as ``locale`` shows it: its ``locales`` entry's keys replace the sample's.

    A shop sends a newsletter's copy in the customer's language, so the
    sample of a written kind needs copy per language; the order or customer
    stays shared. ``en_GB`` falls back to ``en``.
    """
    per_locale = sample.get(LOCALES, {})
    language = locale.split("_")[0]
    overrides: dict[str, Any] = per_locale.get(locale, per_locale.get(language, {}))
    base = {key: value for key, value in sample.items() if key != LOCALES}
    return base | overrides


def send_context(sample: dict[str, Any]) -> dict[str, Any]:
    """The part of a sample a sender supplies (``order``, ``data``, ``newsletter`` …).

    ``send-test`` hands this to the engine, which adds the customer, shop,
    links and message itself, exactly as for real mail.
    """
    return {key: value for key, value in sample.items() if key not in ASSEMBLED | {LOCALES}}


def leavable(kind: kinds.Kind) -> tuple[str, ...]:
    """The paths of the kinds table a shop may leave out of ``kind``'s context."""
    return tuple(path for path in kind.optional if path not in kind.requires)


def has(sample: dict[str, Any], path: str) -> bool:
    """Whether the dotted ``path`` leads to a value in ``sample``."""
    node: Any = sample
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def without(sample: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``sample`` with the dotted ``paths`` taken out, deepest first.

    Deepest first so that ``order.shipping_address.city`` goes before
    ``order.shipping_address``; the sample itself is left as it was.
    """
    result = copy.deepcopy(sample)
    for path in sorted(paths, key=lambda path: path.count("."), reverse=True):
        *parents, last = path.split(".")
        node: Any = result
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return result


def minimal(sample: dict[str, Any], kind: kinds.Kind) -> dict[str, Any]:
    """The smallest context the kinds table lets the engine send ``kind`` with, from ``sample``.

    Derived, not written: every path the table calls optional is taken out,
    so a new optional field is checked as soon as the table names it.
    """
    return without(sample, leavable(kind))
