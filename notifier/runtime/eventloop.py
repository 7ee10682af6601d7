"""The event loop of notifier's own commands: uvloop where it is installed.

``serve`` gets uvloop through uvicorn's "auto" loop; ``worker``, ``send-test``
and the benchmarks ask here, so every process that sends mail runs on the
same loop. uvloop's futures, timers and socket calls are C: about a tenth
less CPU per mail in the sending process. Where uvloop is not installed
(Windows, PyPy) asyncio's own loop runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency wherever it builds
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on the loop ``new_loop`` makes."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(coroutine)
