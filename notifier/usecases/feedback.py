"""What the mailbox providers tell us after delivery: bounces and complaints, by any path.

Reports arrive at the bounce listener (DSNs and ARF mail to a VERP address)
or from a provider's webhook (``POST /v1/feedback/{provider}``); each path
turns its input into a ``reports.Report`` plus the Message-IDs it names, and
``apply`` carries out the one set of rules in one transaction:

- a permanent failure (5.x.x) marks the message ``bounced`` and suppresses
  the address (``hard_bounce``);
- a transient one (4.x.x) is put on record on the message, nothing more;
- a complaint unsubscribes the customer from the message's category and
  from the newsletter, and suppresses the address (``complaint``);
- anything else (auto-replies, success notices, the unreadable) changes
  nothing and is kept, sealed, for ``notifier bounces list``.

Every report is kept as a row; the raw report only where nothing was done
with it (it quotes the original mail).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.flows import consent, kinds, privacy
from notifier.mail import reports
from notifier.mail.compose import Composer
from notifier.store import bounces, customers, outbox, preferences, suppressions, webhooks
from notifier.store.db import Database, Session
from notifier.store.models import Message
from notifier.vocabulary import Category, SuppressionReason

log = logging.getLogger(__name__)
SMTP = "smtp"
COMPLAINT_SOURCE = "complaint"


@dataclass(frozen=True)
class KeptReport:
    """One row of ``notifier bounces list``: no address, no content."""

    id: int
    received_at: datetime
    source: str
    kind: str
    message_id: str | None
    status_code: str | None
    detail: str | None


class Feedback:
    """Matches reports to messages and applies what they mean."""

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        clock: Clock,
        composer: Composer,
        webhooks_on: bool,
    ) -> None:
        self._db = database
        self._sealer = sealer
        self._clock = clock
        self._composer = composer
        self.verp = composer.verp_signer
        self._webhooks_on = webhooks_on

    def accepts(self, address: str) -> bool:
        """True for a VERP address this notifier signed (the listener's RCPT check)."""
        if self.verp is None:
            return False
        try:
            self.verp.read(address)
        except errors.BadToken:
            return False
        return True

    def receive_mail(self, recipients: Sequence[str], data: bytes) -> str:
        """A report mailed to VERP ``recipients``; returns its kind."""
        assert self.verp is not None, "the listener runs only with a bounce domain"
        refs = [self.verp.read(address) for address in recipients]
        report = reports.parse(data)
        named = [mid for ref in refs for mid in self._composer.message_ids(ref)]
        return self.apply(SMTP, report, [*named, *report.message_ids], data)

    def apply(
        self, source: str, report: reports.Report, message_ids: Sequence[str], raw: bytes | None
    ) -> str:
        """Carry out what ``report`` means for the message among ``message_ids``; its kind."""
        now = self._clock.now()
        summary = " ".join(part for part in (report.status, report.diagnostic) if part)
        detail = privacy.redact_addresses(summary)[:500] or report.kind
        with self._db.transaction() as session:
            message = outbox.by_message_id(session, message_ids)
            acted = False
            if report.kind == reports.HARD_BOUNCE:
                acted = self._hard_bounce(session, message, report, detail, now)
            elif report.kind == reports.SOFT_BOUNCE and message is not None:
                outbox.record_delayed(session, message.id, detail, now)
                acted = True
            elif report.kind == reports.COMPLAINT:
                acted = self._complaint(session, message, report, detail, now)
            bounces.add(
                session,
                self._sealer,
                source=source,
                kind=report.kind,
                message_id=message.id if message is not None else None,
                status_code=report.status,
                detail=detail,
                raw=None if acted else raw,
                now=now,
            )
        log.info(
            "feedback.received source=%s kind=%s message=%s acted=%s",
            source,
            report.kind,
            message.id if message is not None else "-",
            acted,
        )
        return report.kind

    def recent(self, limit: int = 50, kinds_: list[str] | None = None) -> list[KeptReport]:
        with self._db.transaction() as session:
            return [
                KeptReport(
                    row.id,
                    row.received_at,
                    row.source,
                    row.kind,
                    row.message_id,
                    row.status_code,
                    bounces.detail(self._sealer, row),
                )
                for row in bounces.recent(session, limit, kinds_)
            ]

    def _addresses(
        self, session: Session, message: Message | None, report: reports.Report
    ) -> set[str]:
        """Blind indexes of the addresses reported, else of the message's recipient now."""
        if report.recipients:
            return {self._sealer.blind_index(address) for address in report.recipients}
        if message is not None:
            recipient = customers.get(session, self._sealer, message.customer_id)
            if recipient is not None:
                return {recipient.email_index}
        return set()

    def _suppress(
        self,
        session: Session,
        message: Message | None,
        report: reports.Report,
        reason: SuppressionReason,
        detail: str,
        now: datetime,
    ) -> set[str]:
        """Suppress every address the report is about; returns their keyed hashes."""
        indexes = self._addresses(session, message, report)
        for index in indexes:
            suppressions.add(session, self._sealer, index, reason, detail, now)
        return indexes

    def _hard_bounce(
        self,
        session: Session,
        message: Message | None,
        report: reports.Report,
        detail: str,
        now: datetime,
    ) -> bool:
        indexes = self._suppress(
            session, message, report, SuppressionReason.HARD_BOUNCE, f"bounce {detail}"[:500], now
        )
        if message is not None and outbox.mark_bounced(session, message.id, detail, now):
            self._tell(session, "message.bounced", message, now)
        return bool(indexes) or message is not None

    def _complaint(
        self,
        session: Session,
        message: Message | None,
        report: reports.Report,
        detail: str,
        now: datetime,
    ) -> bool:
        indexes = self._suppress(session, message, report, SuppressionReason.COMPLAINT, detail, now)
        if message is None:
            return bool(indexes)
        outbox.record_complaint(session, message.id, detail, now)
        self._tell(session, "message.complained", message, now)
        chosen = preferences.choices(session, message.customer_id)
        for category in sorted({message.category, Category.NEWSLETTER} & set(kinds.UNSUBSCRIBABLE)):
            if not consent.is_enabled(category, chosen.get(category)):
                continue  # already off: nothing to unsubscribe from, nothing to tell
            preferences.set_choice(
                session, message.customer_id, category, False, COMPLAINT_SOURCE, now
            )
            if self._webhooks_on:
                webhooks.add(
                    session,
                    "customer.unsubscribed",
                    f"{message.customer_id}\0{category}\0{now.isoformat()}",
                    {
                        "message_id": message.id,
                        "customer_id": message.customer_id,
                        "kind": message.kind,
                        "category": category,
                        "source": COMPLAINT_SOURCE,
                    },
                    now,
                )
        return True

    def _tell(self, session: Session, type: str, message: Message, now: datetime) -> None:
        if self._webhooks_on:
            webhooks.add_for_messages(session, type, [message.id], now)
