"""Whether the configured templates and catalogs can make mail, asked before anything is accepted.

``serve`` and ``worker`` ask at start and refuse to run on any answer: an
engine that answers 202 to events whose mail cannot be rendered breaks its
promise to every one of them (a wheel without its templates failed each mail
with ``unknown kind``). ``notifier templates check`` goes further, rendering
samples; this only compiles, which start-up does anyway to warm its caches.
"""

from __future__ import annotations

from pathlib import Path

from notifier import errors
from notifier.flows import kinds
from notifier.mail import render


def problems(renderer: render.Renderer) -> list[str]:
    """What stops mail, each as ``path[:line]: message``; empty when every template compiles."""
    templates_dir = renderer.templates_dir
    locales_dir = renderer.catalogs.locales_dir.resolve()
    if not renderer.kinds():
        return [f"{templates_dir}: no templates (*{render.SUFFIX}) here"]
    if not renderer.locales():
        return [f"{locales_dir}: no catalogs (<locale>/LC_MESSAGES/messages.po) here"]
    found = [
        f"{templates_dir / (name + render.SUFFIX)}: no template for the kind {name!r}"
        for name in sorted(set(kinds.KINDS) - set(renderer.kinds()))
    ]
    for error in renderer.compile_all():
        found.append(_located(error, templates_dir, locales_dir))
    return found


def _located(error: errors.TemplateError, templates_dir: Path, locales_dir: Path) -> str:
    """The error with its file as a path an operator can open: in the locales or the templates."""
    if error.file is None:
        return f"{templates_dir}: {error.message}"
    in_locales = locales_dir / error.file
    path = in_locales if in_locales.is_file() else templates_dir / error.file
    line = f":{error.line}" if error.line is not None else ""
    return f"{path}{line}: {error.message}"
