"""Text a database can store: no NUL character, no unpaired surrogate, at any depth.

PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000, and no driver can
encode an unpaired UTF-16 surrogate (U+D800 to U+DFFF, which Python's
``json`` lets through from a ``"\\ud800"`` escape) as UTF-8. Such a string
used to reach the group commit and fail there, taking the other events of
its transaction with it. Every input model refuses it instead, as a 422
naming the field, before anything is stored: the shared base ``Checked``
looks at each string of its fields, extras, dict keys and nested lists, and
leaves the strings of nested models to their own check, so each string is
looked at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

Location = tuple[str | int, ...]
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
ERROR_TYPE = "unstorable_text"


def refusal(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None if it can."""
    if text.isascii() and "\x00" not in text:
        return None  # the common case, without the regular expression
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return f"contains an unpaired surrogate (\\u{ord(found.group()):04x}), which is not text"


def problems(value: object, location: Location = ()) -> Iterator[InitErrorDetails]:
    """A pydantic error for each unstorable string in ``value``, at any depth, naming where.

    Strings, dict keys and values, lists and tuples are looked into; a bad
    key is named as pydantic names one, by its location then ``[key]``.
    Models are skipped: they were checked when they were validated.
    """
    if isinstance(value, str):
        reason = refusal(value)
        if reason is not None:
            yield _error(location, reason, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            step = key if isinstance(key, str | int) else str(key)
            if isinstance(key, str) and (reason := refusal(key)) is not None:
                yield _error((*location, key, "[key]"), reason, key)
            yield from problems(item, (*location, step))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from problems(item, (*location, index))


def _clean(value: object) -> bool:
    """Whether ``problems`` finds nothing in ``value``: the same walk, faster, for every input."""
    if isinstance(value, str):
        return refusal(value) is None
    if isinstance(value, dict):
        for key, item in value.items():
            if not (_clean(key) and _clean(item)):
                return False
    elif isinstance(value, list | tuple):
        for item in value:
            if not _clean(item):
                return False
    return True


def _error(location: Location, reason: str, text: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(ERROR_TYPE, reason), loc=location, input=text)


def _storable_text(text: str) -> str:
    reason = refusal(text)
    if reason is not None:
        raise PydanticCustomError(ERROR_TYPE, reason)
    return text


Text = Annotated[str, AfterValidator(_storable_text)]
"""A string outside the models (a path parameter) with the same check."""


class Checked(BaseModel):
    """A model whose every string, at any depth, can be stored (see the module docstring)."""

    @model_validator(mode="after")
    def _storable(self) -> Self:
        extra = self.__pydantic_extra__
        if all(_clean(value) for value in self.__dict__.values()) and (not extra or _clean(extra)):
            return self
        found = [*problems(self.__dict__), *problems(extra or {})]
        # Raised inside validation, pydantic keeps these locations below the model's own.
        raise ValidationError.from_exception_data(type(self).__name__, found)
