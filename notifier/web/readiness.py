"""``/readyz``: whether the database takes a write, probed for real, its changes logged."""

from __future__ import annotations

import asyncio
import json
import logging

from notifier import errors
from notifier.service import Notifier

log = logging.getLogger(__name__)


class Readiness:
    """Runs the engine's write probe off the event loop and logs when the answer changes.

    The answer itself names no internals (a load balancer or a stranger may
    read it); the reason goes to the log, once per change rather than once per
    probe, so a probe every few seconds during an outage does not flood it.
    """

    def __init__(self, engine: Notifier) -> None:
        self._engine = engine
        self._ready = True
        self._lock = asyncio.Lock()

    async def check(self) -> bool:
        async with self._lock:  # one at a time: a burst of probes waits, not a connection each
            try:
                await asyncio.to_thread(self._engine.check_ready)
            except errors.ServiceUnavailable as exc:
                if self._ready:
                    log.warning("readiness.lost reason=%s", json.dumps(exc.message))
                self._ready = False
                return False
            if not self._ready:
                log.info("readiness.regained")
            self._ready = True
            return True
