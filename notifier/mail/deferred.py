"""Per-mail data as placeholders: run a template once and learn what each mail of its shape needs.

A template is rendered with every per-mail value wrapped in ``Data``, which
knows the value of the mail at hand but writes a placeholder wherever it is
output. Whatever the template decides on that data (``is given``, ``if``,
the length of a loop, a comparison) is answered from the real value and
recorded as a question; whatever it computes from it (a filter, a
translation with variables, an attribute) is recorded as a step of a
program. So one run yields the MJML with placeholders, the questions whose
answers make its shape, and the program that computes, for any mail with
the same answers, the values to put in the placeholders.

Nothing is guessed: an operation on per-mail data that cannot be deferred
raises ``NotCompilable``, and the caller renders that template per mail.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import jinja2
import markupsafe

OPEN = "\ue000"
"""Opens a placeholder: ``OPEN``, the output's number, then ``HTML`` or ``RAW``."""
HTML = "\ue001"
"""Closes a placeholder filled with the value HTML-escaped (Jinja's autoescaped output)."""
RAW = "\ue002"
"""Closes a placeholder filled with ``str(value)``."""

Values = Mapping[str, Any]
Step = Callable[[list[Any], Values], Any]
"""One step of the program: the slots computed so far and the mail's context → a value."""
Question = Callable[[Values], object]
"""Recomputes one answer from a mail's context alone (asked before the program runs)."""


class NotCompilable(Exception):
    """The template does something with per-mail data that cannot wait for the fill."""


class Trace:
    """One run of a template with placeholders: its program, its outputs and its questions."""

    def __init__(self, environment: jinja2.Environment) -> None:
        self.environment = environment
        self.program: list[Step] = []
        self.outputs: list[tuple[int, bool]] = []
        """Per placeholder: the slot it shows and whether it is HTML-escaped."""
        self.questions: list[tuple[Question, object]] = []

    def top(self, values: Values) -> dict[str, Data]:
        """The context's top-level values, each as ``Data``."""
        return {
            name: self._slot(value, _from_context(name), _from_context_direct(name))
            for name, value in values.items()
        }

    def _slot(self, real: object, step: Step, direct: Question) -> Data:
        self.program.append(step)
        return Data(self, real, len(self.program) - 1, direct)

    def derive(
        self, function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Data:
        """``function(*args, **kwargs)`` on per-mail data: computed now, and again per mail."""
        _refuse_placeholders(args, kwargs)
        real = function(*_reals(args), **{key: _real(value) for key, value in kwargs.items()})

        def step(slots: list[Any], values: Values) -> Any:
            return function(
                *(slots[a._index] if isinstance(a, Data) else a for a in args),
                **{k: slots[v._index] if isinstance(v, Data) else v for k, v in kwargs.items()},
            )

        def direct(values: Values) -> Any:
            return function(
                *(a._direct(values) if isinstance(a, Data) else a for a in args),
                **{k: v._direct(values) if isinstance(v, Data) else v for k, v in kwargs.items()},
            )

        return self._slot(real, step, direct)

    def ask(
        self, function: Callable[..., object], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        """``function(*args, **kwargs)`` decides the template's shape: answered and recorded."""
        _refuse_placeholders(args, kwargs)
        answer = function(*_reals(args), **{key: _real(value) for key, value in kwargs.items()})
        if not isinstance(answer, bool | int | str | None):
            raise NotCompilable(f"a decision on per-mail data gave {type(answer).__name__}")

        def question(values: Values) -> object:
            return function(
                *(a._direct(values) if isinstance(a, Data) else a for a in args),
                **{k: v._direct(values) if isinstance(v, Data) else v for k, v in kwargs.items()},
            )

        self.questions.append((question, answer))
        return answer

    def output(self, data: Data, html: bool) -> str:
        """The placeholder for ``data`` shown in the mail."""
        self.outputs.append((data._index, html))
        return f"{OPEN}{len(self.outputs) - 1}{HTML if html else RAW}"

    def wrap(self, function: Callable[..., Any], *, decides: bool) -> Callable[..., Any]:
        """``function`` as the template calls it: on per-mail data it is deferred or asked."""

        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not any(isinstance(value, Data) for value in (*args, *kwargs.values())):
                _refuse_placeholders(args, kwargs)
                return function(*args, **kwargs)
            if decides:
                return self.ask(function, args, kwargs)
            return self.derive(function, args, kwargs)

        return wrapped


class Data:
    """A per-mail value inside a traced template: real for decisions, a placeholder when shown."""

    __slots__ = ("_direct", "_index", "_real", "_trace")

    jinja_pass_arg = None
    """Jinja asks every callable whether it wants the context; data never does."""

    def __init__(self, trace: Trace, real: object, index: int, direct: Question) -> None:
        self._trace = trace
        self._real = real
        self._index = index
        self._direct = direct

    def __getattr__(self, name: str) -> Data:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._trace.derive(self._trace.environment.getattr, (self, name), {})

    def __getitem__(self, key: object) -> Data:
        return self._trace.derive(self._trace.environment.getitem, (self, key), {})

    def __call__(self, *args: Any, **kwargs: Any) -> Data:
        return self._trace.derive(_call, (self, *args), kwargs)

    def __html__(self) -> str:
        return self._trace.output(self, html=True)

    def __str__(self) -> str:
        return self._trace.output(self, html=False)

    def __bool__(self) -> bool:
        return bool(self._trace.ask(bool, (self,), {}))

    def __len__(self) -> int:
        return int(self._trace.ask(len, (self,), {}))

    def __iter__(self) -> Iterator[Data]:
        count = int(self._trace.ask(_count, (self,), {}))
        for index in range(count):
            yield self._trace.derive(_nth, (self, index), {})

    def __contains__(self, item: object) -> bool:
        return bool(self._trace.ask(_contains, (self, item), {}))

    def __eq__(self, other: object) -> bool:
        return bool(self._trace.ask(_equal, (self, other), {}))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        raise NotCompilable("per-mail data used as a key")

    def __repr__(self) -> str:
        raise NotCompilable("per-mail data shown with repr")


def stage_environment(
    environment: jinja2.Environment, trace_of: Callable[[], Trace | None]
) -> None:
    """Make ``environment``'s filters, tests and global functions defer or ask on ``Data``.

    ``trace_of`` names the trace of the run under way (one at a time per environment).
    """

    def deferring(function: Callable[..., Any], decides: bool) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            trace = trace_of()
            if trace is None:  # compiling, outside a traced run (constant translations)
                return function(*args, **kwargs)
            return trace.wrap(function, decides=decides)(*args, **kwargs)

        return wrapped

    environment.filters = {
        name: deferring(function, False) for name, function in environment.filters.items()
    }
    environment.tests = {
        name: deferring(cast(Callable[..., Any], function), True)
        for name, function in environment.tests.items()
    }
    environment.globals.update(
        {
            name: deferring(value, False)
            for name, value in environment.globals.items()
            if callable(value) and not isinstance(value, type)
        }
    )


def _refuse_placeholders(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """A filter given text that holds a placeholder would work on the placeholder, not the value."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, str) and OPEN in value:
            raise NotCompilable("a filter or test applied to text made from per-mail data")


def _from_context(name: str) -> Step:
    return lambda slots, values: values[name]


def _from_context_direct(name: str) -> Question:
    return lambda values: values[name]


def _real(value: object) -> object:
    return value._real if isinstance(value, Data) else value


def _reals(args: tuple[Any, ...]) -> list[Any]:
    return [_real(value) for value in args]


def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list | tuple) else len(list(value))


def _nth(value: Any, index: int) -> Any:
    return value[index] if isinstance(value, list | tuple) else list(value)[index]


def _contains(value: Any, item: object) -> bool:
    return item in value


def _equal(value: object, other: object) -> bool:
    return value == other


def fill_value(value: object, html: bool) -> str:
    """What a placeholder becomes for ``value``: as Jinja's autoescaped output, or ``str``."""
    return str(markupsafe.escape(value)) if html else str(value)
