"""The privacy promises as operations: erasure, export, retention, key rotation.

Each is logged by action and customer id only, never by address or name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.flows import consent, kinds
from notifier.store import (
    bounces,
    campaigns,
    customers,
    events,
    orders,
    outbox,
    preferences,
    resealing,
    suppressions,
    webhooks,
)
from notifier.store.db import Database, Session
from notifier.vocabulary import Category

log = logging.getLogger(__name__)

NOT_STORED = {
    "phone_numbers": (
        "notifier stores no phone number: every field named like one (phone, mobile, "
        "telefoon, tel, gsm, cell, fax, ...) is dropped on arrival, at any depth"
    ),
}
"""What the export states is never held, so that its absence is a promise, not an omission."""
DATA_KEYS = "data keys"
"""``rotate_keys``'s count of data keys re-wrapped, beside the columns re-encrypted."""


class Privacy:
    def __init__(
        self, database: Database, sealer: Sealer, clock: Clock, retention: timedelta
    ) -> None:
        self._db = database
        self._sealer = sealer
        self._clock = clock
        self._retention = retention

    def erase(self, customer_id: str) -> int:
        """Right to erasure: cancel pending mail and remove every personal datum of the customer.

        Messages stay only as anonymous counts (status, kind, times), under
        ids that hold no customer id; no run cursor and no webhook event
        names the customer any more. An address suppressed for a bounce or
        complaint stays suppressed: the suppression holds a keyed hash, not
        the address, and exists so the shop never mails someone who asked it
        to stop. On SQLite the WAL is then checkpointed and truncated, and
        ``secure_delete`` has overwritten the deleted content.

        First of all the customer's data key is destroyed (committed in the
        key store): from then on no copy of their data opens, not even one
        in a backup of the database taken before now.
        """
        now = self._clock.now()
        with self._db.transaction() as session:
            email_index = customers.email_index(session, customer_id)
            if email_index is None:
                raise errors.NotFound(f"no customer {customer_id!r}")
            if self._sealer.data_keys is not None:
                self._sealer.data_keys.destroy(customer_id)
            suppressions.forget_detail(session, email_index)
            bounces.forget_customer(session, customer_id)
            webhooks.forget_customer(session, customer_id)
            campaigns.forget_customer(session, customer_id)
            touched = outbox.erase_customer(session, customer_id, now)
            events.forget_customer(session, customer_id)
            orders.forget_customer(session, customer_id)
            preferences.forget(session, customer_id)
            customers.forget(session, customer_id)
        # The WAL still holds the erased rows' pages until a checkpoint copies it over them.
        self._db.checkpoint()
        log.info("privacy.erased customer=%s messages=%d", customer_id, touched)
        return touched

    def export(self, customer_id: str) -> dict[str, Any]:
        """All that is held on the customer, decrypted, as JSON-ready data (GDPR Art. 15 and 20)."""
        with self._db.transaction() as session:
            recipient = customers.get(session, self._sealer, customer_id)
            if recipient is None:
                raise errors.NotFound(f"no customer {customer_id!r}")
            chosen = preferences.choices(session, customer_id)
            changes = preferences.changes(session, customer_id)
            consents = preferences.consents(session, customer_id)
            suppressed = suppressions.get(session, recipient.email_index)
            messages = outbox.export_rows(session, customer_id)
            attempts = outbox.attempts_of_customer(session, customer_id)
            received = events.of_customer(session, customer_id)
            reports = bounces.of_customer(session, self._sealer, customer_id)
            known_orders = orders.of_customer(session, self._sealer, customer_id)
            exported = {
                "not_stored": NOT_STORED,
                "customer": {
                    "id": recipient.id,
                    "email": recipient.email,
                    "name": recipient.name,
                    "first_name": recipient.first_name,
                    "locale": recipient.locale,
                    "tags": customers.tags(session, customer_id),
                },
                "preferences": {
                    category: consent.is_enabled(category, chosen.get(category))
                    for category in (*kinds.UNSUBSCRIBABLE, Category.SERVICE)
                },
                "preference_changes": [
                    {
                        "category": c.category,
                        "enabled": c.enabled,
                        "source": c.source,
                        "at": c.at.isoformat(),
                    }
                    for c in changes
                ],
                "consents": [
                    {
                        "category": c.category,
                        "source": c.source,
                        "ip": self._sealer.open_remaining_text(c.ip),
                        "text_version": c.text_version,
                        "given_at": c.given_at.isoformat(),
                    }
                    for c in consents
                ],
                "suppression": (
                    {
                        "reason": suppressed.reason,
                        "detail": suppressions.detail(self._sealer, suppressed),
                        "since": suppressed.created_at.isoformat(),
                    }
                    if suppressed is not None
                    else None
                ),
                "orders": known_orders,
                "events": received,
                "reports": reports,
                "messages": [
                    {
                        "id": m.id,
                        "kind": m.kind,
                        "category": m.category,
                        "status": m.status.value,
                        "reason": m.reason,
                        "order_id": m.order_id,
                        "event_id": m.event_id,
                        "campaign_id": m.campaign_id,
                        "locale": m.locale,
                        "created_at": m.created_at.isoformat(),
                        "send_after": m.send_after.isoformat(),
                        "first_attempt_at": _iso(m.first_attempt_at),
                        "sent_at": _iso(m.sent_at),
                        "message_id_header": m.message_id,
                        "last_error": m.last_error,
                        "attempts": m.attempts,
                        "delivery_attempts": attempts.get(m.id, []),
                        "context": self._sealer.open_remaining_json(m.context),
                    }
                    for m in messages
                ],
            }
        log.info("privacy.exported customer=%s", customer_id)
        return exported

    def purge_expired(self) -> int:
        """Retention: drop what is older than the retention period; returns the messages purged.

        The context of finished messages last touched before then goes, and
        so do the orders no event touched since then (a later event of such
        an order is taken as its first one).
        """
        cutoff = self._clock.now() - self._retention
        purged = self._in_pages(lambda session: outbox.purge_context(session, cutoff))
        forgotten = self._in_pages(lambda session: orders.purge(session, cutoff))
        with self._db.transaction() as session:
            # Reports quote mail; webhook events are done with. Neither is kept past retention.
            bounces.purge(session, cutoff)
            webhooks.purge(session, cutoff)
        if purged or forgotten:
            log.info("privacy.purged messages=%d orders=%d", purged, forgotten)
        return purged

    def _in_pages(self, purge_page: Callable[[Session], int]) -> int:
        """Run ``purge_page`` in short transactions until it finds nothing more."""
        total = 0
        while True:
            with self._db.transaction() as session:
                page = purge_page(session)
            total += page
            if page == 0:
                return total

    def rotate_keys(self, page_size: int = 500) -> dict[str, int]:
        """Re-wrap the data keys with the current (first) master key; move what the master key
        sealed under the customers' data keys (see ``store.resealing``).

        Rows sealed with data keys are not rewritten. Pages are short
        transactions, so the engine keeps running meanwhile.
        """
        rotated: dict[str, int] = {}
        if self._sealer.data_keys is not None:
            rotated[DATA_KEYS] = self._sealer.data_keys.rewrap(page_size)
        for sealed in resealing.SEALED_COLUMNS:
            after: Any = None
            total = 0
            while True:
                with self._db.transaction() as session:
                    after, changed = resealing.reseal_page(
                        session, self._sealer, sealed, after, page_size
                    )
                total += changed
                if after is None:
                    break
            rotated[sealed.name] = total
        log.info("privacy.keys_rotated %s", " ".join(f"{k}={v}" for k, v in rotated.items()))
        return rotated


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
