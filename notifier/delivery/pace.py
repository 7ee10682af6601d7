"""The pace a relay accepts: a token bucket, slowed by "too many" replies, then ramped up.

A relay (SES, Postmark, a smarthost) takes N messages a second and answers
421/451/454 past it. The transport takes a token before each message;
``NOTIFIER_SMTP_RATE`` tokens come per second, up to ``NOTIFIER_SMTP_RATE_BURST``
saved up. A throttling reply halves the rate (not below a tenth of it) and
the message waits and is tried again in the same send, so no retry of the
message is spent; every accepted message then wins back a twentieth of the
configured rate. The rate is per process: with several sending processes
give each its share (``NOTIFIER_SMTP_RATE`` divided by their number).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

THROTTLE_CODES = (421, 451, 454)
_THROTTLE_TEXT = re.compile(r"too many|rate|throttl|slow down|limit", re.I)


def is_throttling(code: int, text: str) -> bool:
    """A temporary refusal that says "slower", as opposed to any other 4xx."""
    return code in THROTTLE_CODES and bool(_THROTTLE_TEXT.search(text))


class Pace:
    """``rate`` messages a second, ``burst`` at once at most; unlimited when rate is None.

    Each message gets the next slot of a schedule ``1 / rate`` apart (GCRA),
    so a waiter woken late does not slow down the ones after it; a sender
    idle for a while may catch up by ``burst`` messages, no more. The burst
    defaults to a tenth of a second's worth.
    """

    def __init__(
        self,
        rate: float | None,
        burst: int | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.nominal = rate
        self.rate = rate
        self.burst = burst or max(1, round((rate or 0) / 10))
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = monotonic()

    async def take(self) -> None:
        """Wait for this message's slot."""
        if self.rate is None:
            return
        now = self._monotonic()
        slot = max(self._next, now - (self.burst - 1) / self.rate)
        self._next = slot + 1 / self.rate
        if slot > now:
            await self._sleep(slot - now)

    def slow_down(self) -> float:
        """Halve the rate after a throttling reply; returns how long to wait before trying again."""
        if self.rate is None or self.nominal is None:
            return 1.0
        self.rate = max(self.nominal / 10, self.rate / 2)
        self._next = max(self._next, self._monotonic() + 1 / self.rate)
        return 1 / self.rate

    def accepted(self) -> None:
        """One message taken: win back part of the configured rate."""
        if self.rate is not None and self.nominal is not None and self.rate < self.nominal:
            self.rate = min(self.nominal, self.rate + self.nominal / 20)
