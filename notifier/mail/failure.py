"""Why a letter could not be made, said twice: in full for its record, without data for the log.

A render error's text may quote the message's data (an MJML error shows the
generated markup, a filter's ``ValueError`` the value it choked on), so the
log gets only what the template's author wrote: the file and line, the
error's class and the name of a missing variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2

from notifier import errors
from notifier.vocabulary import TemplateFault

_NAME = r"'([A-Za-z_]\w{0,63})'"
_MISSING = re.compile(rf"(?:{_NAME} is undefined|has no attribute {_NAME})$")
"""Jinja's words for a missing variable; only a name, never a value, is taken from them."""


@dataclass(frozen=True, slots=True)
class RenderFailure:
    """A message that could not be rendered; picklable, so render processes hand it back.

    ``reason`` is the template's fault (``TemplateError.reason``; anything else
    raised while assembling is ``CONTEXT``), ``kind`` and ``locale`` the
    message's kind name and the locale it was rendered for. ``detail`` is the
    whole reason, for the message's ``last_error``; ``where``, ``error`` and
    ``missing`` hold no personal data, for the log.
    """

    reason: TemplateFault
    kind: str
    locale: str
    detail: str
    error: str
    where: str | None = None
    missing: str | None = None

    @property
    def summary(self) -> str:
        """``where=… error=… missing=…``, the parts known, for a log line."""
        parts = {"where": self.where, "error": self.error, "missing": self.missing}
        return " ".join(f"{name}={value}" for name, value in parts.items() if value)


def render_failure(exc: Exception, kind: str, locale: str) -> RenderFailure:
    """What ``exc``, raised while assembling a ``kind`` letter in ``locale``, says of the cause."""
    if isinstance(exc, errors.NotifierError):
        detail = f"render: {exc}"
    else:
        detail = f"render: {type(exc).__name__}: {exc}"
    if not isinstance(exc, errors.TemplateError):
        return RenderFailure(TemplateFault.CONTEXT, kind, locale, detail, type(exc).__name__)
    made = (exc.reason, kind, locale, detail)
    where = exc.file or "<template>"
    if exc.line is not None:
        where = f"{where}:{exc.line}"
    cause = exc.__cause__
    if cause is None:  # notifier's own words about the template, e.g. "the subject is empty"
        return RenderFailure(*made, "TemplateError", where)
    if not isinstance(cause, jinja2.UndefinedError):
        return RenderFailure(*made, type(cause).__name__, where)
    # The renderer names the missing value's context path as data; a bare Jinja error
    # only in its words, from which the name alone is taken.
    missing = exc.missing
    if missing is None and (found := _MISSING.search(str(cause))):
        missing = found.group(1) or found.group(2)
    return RenderFailure(*made, "UndefinedError", where, missing)
