"""The sends a process makes at once, urgent ones served first.

Every send waits for a slot (``NOTIFIER_SMTP_CONNECTIONS`` of them) and then
for its turn at the relay's pace (``delivery.pace``). With a newsletter
backlog the slots are always taken and senders of the next batches queue for
them; a plain semaphore would put an order confirmation of the express lane
at the back of that queue, seconds behind at a slow relay's rate. Here a
freed slot goes to a waiting urgent send first, so order and service mail
waits for no more than the sends already under way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator


class Slots:
    """``count`` slots; ``held(urgent=True)`` is served before every non-urgent waiter."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiting: dict[bool, collections.deque[asyncio.Future[None]]] = {
            True: collections.deque(),
            False: collections.deque(),
        }

    @contextlib.asynccontextmanager
    async def held(self, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if self._free > 0 and not self._waiting[True] and not self._waiting[False]:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[urgent].append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot just as it was cancelled: pass it on
            else:
                self._waiting[urgent].remove(turn)
            raise

    def _release(self) -> None:
        for urgent in (True, False):
            queue = self._waiting[urgent]
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # the slot passes straight to the waiter
                    return
        self._free += 1
