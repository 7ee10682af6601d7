"""Sends the webhook outbox to the shop, signed as Standard Webhooks says, with backoff.

Each event is POSTed as ``{"type", "timestamp", "data"}`` with the headers
``webhook-id`` (stable: the same event always has the same id, so the shop
can deduplicate), ``webhook-timestamp`` and ``webhook-signature``, made by
the ``standardwebhooks`` library. Any 2xx is delivered; anything else
(another status, a refused connection, a timeout) is tried again after
``BACKOFF``, for about a day, then the event is ``failed``. The sender runs
as its own scheduler job, so a shop that is down never holds up mail.

Delivery is at least once: an event whose 2xx came back but was not yet
recorded when the process died is sent again when its lease runs out. The
duplicates are bounded by ``BATCH`` per process that dies, and all carry the
same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from standardwebhooks.webhooks import Webhook

from notifier.clock import Clock
from notifier.store import webhooks
from notifier.store.db import Database

log = logging.getLogger(__name__)
BATCH = 50
LEASE = timedelta(minutes=2)
BACKOFF = tuple(
    timedelta(seconds=seconds)
    for seconds in (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
)
"""Waits after each failed try: 11 tries over 23.7 hours, then the event is ``failed``."""


def next_attempt(attempts: int, now: datetime) -> datetime | None:
    """When to try again after the ``attempts``-th failed try; None once the backoff is spent."""
    if attempts > len(BACKOFF):
        return None
    return now + BACKOFF[attempts - 1]


class WebhookSender:
    """Delivers due webhook events; ``run_once`` is the scheduler job."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        url: str,
        secret: str,
        timeout: float,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._db = database
        self._clock = clock
        self._url = url
        self._signer = Webhook(secret)
        self._timeout = timeout
        self._on_outcome = on_outcome

    async def run_once(self) -> int:
        """Send every event due now, a batch at a time; returns how many were delivered."""
        delivered = 0
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            while batch := await asyncio.to_thread(self._claim):
                results = await asyncio.gather(*(self._post(client, event) for event in batch))
                await asyncio.to_thread(self._record, list(zip(batch, results, strict=True)))
                delivered += sum(1 for error in results if error is None)
                if len(batch) < BATCH:
                    break
        return delivered

    def _claim(self) -> list[webhooks.Due]:
        with self._db.transaction() as session:
            return webhooks.claim_due(session, self._clock.now(), BATCH, LEASE)

    async def _post(self, client: httpx.AsyncClient, event: webhooks.Due) -> str | None:
        """POST one event; None when the shop took it, else what went wrong."""
        now = self._clock.now()
        body = json.dumps(
            {"type": event.type, "timestamp": event.created_at.isoformat(), "data": event.data},
            separators=(",", ":"),
        )
        headers = {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(event.id, now, body),
        }
        try:
            response = await client.post(self._url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def _record(self, results: list[tuple[webhooks.Due, str | None]]) -> None:
        now = self._clock.now()
        with self._db.transaction() as session:
            for event, error in results:
                if error is None:
                    webhooks.mark_delivered(session, event.id, now)
                    outcome = "delivered"
                else:
                    retry_at = next_attempt(event.attempts + 1, now)
                    webhooks.mark_retry(session, event.id, error, retry_at)
                    outcome = "retrying" if retry_at else "failed"
                    log.warning(
                        "webhooks.not_delivered event=%s type=%s attempt=%d outcome=%s",
                        event.id,
                        event.type,
                        event.attempts + 1,
                        outcome,
                    )
                if self._on_outcome is not None:
                    self._on_outcome(outcome)
