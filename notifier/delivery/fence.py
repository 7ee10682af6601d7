"""The fence a send passes just before its message leaves: does this worker still own it?

A worker that was paused (SIGSTOP, a stalled VM) or cut off from the
database may have lost its messages to a takeover without knowing. The
pipeline asks before each send, and the transport asks once more right
before it writes the message's bytes, since a send may have been paused
between its first command and its DATA. The check is set per send in a
context variable, so the transport's interface stays ``send(sender,
recipients, data)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Check = Callable[[], Awaitable[None]]
"""Returns if the send may go on; raises ``LeaseLost`` if not."""

_check: ContextVar[Check | None] = ContextVar("notifier_delivery_fence", default=None)


class LeaseLost(Exception):
    """This worker no longer owns the message it was sending: another worker took it over."""


@contextmanager
def guarding(check: Check) -> Iterator[None]:
    """Make ``check`` the fence of the send under way in this task."""
    token = _check.set(check)
    try:
        yield
    finally:
        _check.reset(token)


async def passed() -> None:
    """Raise ``LeaseLost`` if the send under way may no longer go out; a no-op if unguarded."""
    check = _check.get()
    if check is not None:
        await check()
