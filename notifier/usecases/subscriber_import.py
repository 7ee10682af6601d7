"""Bringing in subscribers from the shop's previous tool, with the consent they gave there.

Each row is a customer, as events send them, plus the consent proof the old
tool kept (``at``, ``source``, ``ip``, ``text_version``). A row with proof
makes a confirmed subscriber and records that proof (it is what the export
shows); a row without one makes an unconfirmed customer, who gets the double
opt-in mail only when the import asks for it (``confirm: send``).

Rows are checked one by one with the intake's own schema (``CustomerIn``) and
written a chunk at a time, one transaction each; a chunk the database
refuses is written again row by row, so one bad row costs only itself and no
row is ever half written. Importing the same rows again changes nothing: the
customer is upserted, a proof already on record is not recorded twice, and
the double opt-in mail has an id derived from the customer.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from notifier import errors, phones, schemas
from notifier.crypto import Sealer
from notifier.flows import events as event_flows
from notifier.flows import kinds
from notifier.schemas import ImportOut, ImportProblem, PhoneFree, SubscriberIn
from notifier.settings import Settings
from notifier.store import customers, outbox, preferences
from notifier.store.db import Database
from notifier.usecases import intake
from notifier.vocabulary import Category

log = logging.getLogger(__name__)

CHUNK = 1000
SOURCE = "import"
"""The source of the preference an imported proof turns on (the proof keeps its own)."""
UNKNOWN_TEXT = "unknown"
"""The text version recorded for a proof that names none."""
CONFIRM_KIND = "newsletter_confirm"
CUSTOMER_FIELDS = ("id", "email", "name", "first_name", "locale", "tags")
CONSENT_FIELDS = ("at", "source", "ip", "text_version")
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a proof's ``at`` may lie: the old tool's clock may run ahead."""
_TAG_SEPARATORS = re.compile(r"[\s,;|]+")

Confirm = Literal["send", "none"]
Row = tuple[int, Any]
"""A row as read: its line (NDJSON, CSV) or position (JSON list), and what it holds."""


class Unreadable(ValueError):
    """A row that is not even a row: a line that is not JSON, a value that is not an object."""


@dataclass
class _Tally:
    imported: int = 0
    confirmed: int = 0
    unconfirmed: int = 0
    confirm_mails: int = 0
    kept_unsubscribed: int = 0
    problems: list[ImportProblem] = field(default_factory=list)

    def add(self, other: _Tally) -> None:
        self.imported += other.imported
        self.confirmed += other.confirmed
        self.unconfirmed += other.unconfirmed
        self.confirm_mails += other.confirm_mails
        self.kept_unsubscribed += other.kept_unsubscribed
        self.problems += other.problems


@dataclass(frozen=True)
class _Checked:
    line: int
    row: SubscriberIn
    confirm: bool


class SubscriberImport:
    """Imports subscriber rows; ``wake`` is told of the double opt-in mails queued."""

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        settings: Settings,
        now: Callable[[], datetime],
        wake: Callable[[list[outbox.NewMessage]], None],
        dropped_phones: Callable[[PhoneFree, str], None],
    ) -> None:
        """``dropped_phones`` counts and logs a row's phone fields (``intake.DroppedPhones``)."""
        self._db = database
        self._sealer = sealer
        self._settings = settings
        self._now = now
        self._wake = wake
        self._dropped_phones = dropped_phones

    def run(self, rows: Iterable[Row], confirm: Confirm = "none") -> ImportOut:
        """Import ``rows``; the answer counts what was done and names each row refused.

        ``confirm`` is the import's choice for rows without proof that name
        none themselves. An ``Unreadable`` row, or one the schema refuses, is
        reported by its line and field; the others go in.
        """
        total = _Tally()
        count = 0
        chunk: list[_Checked] = []
        for line, raw in rows:
            count += 1
            try:
                chunk.append(self._check(line, raw, confirm))
            except Unreadable as exc:
                total.problems.append(ImportProblem(line=line, field=None, message=str(exc)))
            except errors.InvalidInput as exc:
                total.problems.append(ImportProblem(line=line, field=exc.field, message=str(exc)))
            if len(chunk) >= CHUNK:
                total.add(self._write(chunk))
                chunk = []
        if chunk:
            total.add(self._write(chunk))
        total.problems.sort(key=lambda problem: problem.line)
        log.info(
            "subscribers.imported rows=%d imported=%d confirmed=%d confirm_mails=%d refused=%d",
            count,
            total.imported,
            total.confirmed,
            total.confirm_mails,
            len(total.problems),
        )
        return ImportOut(
            rows=count,
            imported=total.imported,
            confirmed=total.confirmed,
            unconfirmed=total.unconfirmed,
            confirm_mails=total.confirm_mails,
            kept_unsubscribed=total.kept_unsubscribed,
            errors=total.problems,
        )

    def _check(self, line: int, raw: Any, confirm: Confirm) -> _Checked:
        if isinstance(raw, _Unread):
            raise Unreadable(str(raw))
        if not isinstance(raw, Mapping):
            raise Unreadable("a row must be an object")
        flat = "customer" not in raw
        data = nest(raw) if flat else raw
        try:
            row = schemas.parsed(SubscriberIn, data)
        except errors.InvalidInput as exc:
            if flat and exc.field and exc.field.startswith(("customer.", "consent.")):
                exc.field = exc.field.split(".", 1)[1]
            raise
        self._dropped_phones(row, f"import-line-{line}")
        if row.consent is not None and row.consent.at > self._now() + CLOCK_SKEW:
            raise errors.InvalidInput(
                "consent cannot be given in the future", "at" if flat else "consent.at"
            )
        return _Checked(line, row, (row.confirm or confirm) == "send")

    def _write(self, chunk: list[_Checked]) -> _Tally:
        """The chunk in one transaction; if the database refuses it, row by row."""
        try:
            return self._write_rows(chunk)
        except (errors.Duplicate, errors.Unstorable) as exc:
            if len(chunk) == 1:
                return _Tally(problems=[_unstored(chunk[0], exc)])
        tally = _Tally()
        for checked in chunk:
            try:
                tally.add(self._write_rows([checked]))
            except (errors.Duplicate, errors.Unstorable) as exc:
                tally.problems.append(_unstored(checked, exc))
        return tally

    def _write_rows(self, chunk: list[_Checked]) -> _Tally:
        now = self._now()
        tally = _Tally(imported=len(chunk))
        newsletter = Category.NEWSLETTER
        ids = [checked.row.customer.id for checked in chunk]
        confirm_due = event_flows.scheduled_time(CONFIRM_KIND, now, self._settings)
        queued: dict[str, outbox.NewMessage] = {}
        with self._db.transaction() as session:
            customers.upsert_all(
                session,
                self._sealer,
                [
                    intake.customer_details(checked.row.customer, self._settings, now)
                    for checked in chunk
                ],
            )
            chosen = preferences.choices_for(session, ids)
            known = preferences.known_consents(
                session,
                [checked.row.customer.id for checked in chunk if checked.row.consent],
                newsletter,
            )
            turned_on: list[str] = []
            proofs: list[preferences.Proof] = []
            for checked in chunk:
                customer, proof = checked.row.customer, checked.row.consent
                choice = chosen.get((customer.id, newsletter))
                if proof is not None:
                    if choice is False:
                        # Turned off here: a proof from before does not turn it on again.
                        tally.kept_unsubscribed += 1
                        continue
                    if choice is None:
                        turned_on.append(customer.id)
                        chosen[(customer.id, newsletter)] = True
                    given = proof.at.astimezone(UTC)
                    if (customer.id, given, proof.source) not in known:
                        known.add((customer.id, given, proof.source))
                        proofs.append(
                            preferences.Proof(
                                customer.id,
                                newsletter,
                                proof.source,
                                proof.ip,
                                proof.text_version or UNKNOWN_TEXT,
                                given,
                            )
                        )
                    tally.confirmed += 1
                elif choice is True:
                    tally.confirmed += 1
                else:
                    tally.unconfirmed += 1
                    if choice is None and checked.confirm:
                        message = self._confirm_mail(
                            customer.id, str(customer.email), confirm_due, now
                        )
                        queued[message.id] = message
            preferences.set_first_choices(session, turned_on, newsletter, True, SOURCE, now)
            preferences.record_consents(session, self._sealer, proofs)
            sent_before = {row.id for row in outbox.get_many(session, list(queued))}
            new = [message for key, message in queued.items() if key not in sent_before]
            outbox.add(session, self._sealer, new)
        tally.confirm_mails = len(new)
        if new:
            self._wake(new)
        return tally

    def _confirm_mail(
        self, customer_id: str, email: str, due: datetime, now: datetime
    ) -> outbox.NewMessage:
        """The double opt-in mail for an imported customer: one per customer and address.

        Its id is a keyed hash (no customer id in it), so a second import of
        the row finds it and queues none.
        """
        kind = kinds.get(CONFIRM_KIND)
        digest = self._sealer.blind_index(f"import-confirm\0{customer_id}\0{email}")
        return outbox.NewMessage(
            id=f"imp_{digest[:32]}",
            customer_id=customer_id,
            kind=kind.name,
            category=kind.category,
            priority=kind.priority,
            send_after=due,
            context={"data": {}},
            created_at=now,
        )


def _unstored(checked: _Checked, exc: errors.NotifierError) -> ImportProblem:
    field = exc.field if isinstance(exc, errors.InvalidInput) else None
    return ImportProblem(line=checked.line, field=field, message=f"could not be stored: {exc}")


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A flat row (a CSV line, a flat JSON object) as ``SubscriberIn`` reads it.

    ``id``, ``email``, ``name``, ``first_name``, ``locale`` and ``tags`` make
    the customer; ``at``, ``source``, ``ip`` and ``text_version`` the proof
    (none when all four are empty). Empty cells count as absent; tags may be
    a list or text separated by spaces, commas, semicolons or ``|``. Any
    other column is kept at the top, where the schema names it as unknown,
    but for a phone column: that is the customer's, and dropped from there.
    """
    values = {key: value for key, value in flat.items() if value not in ("", None)}
    customer = {
        key: values.pop(key)
        for key in list(values)
        if key in CUSTOMER_FIELDS or (isinstance(key, str) and phones.means_phone(key))
    }
    if isinstance(customer.get("tags"), str):
        customer["tags"] = [tag for tag in _TAG_SEPARATORS.split(customer["tags"]) if tag]
    consent = {key: values.pop(key) for key in CONSENT_FIELDS if key in values}
    nested: dict[str, Any] = {"customer": customer, **values}
    if consent:
        nested["consent"] = consent
    return nested


def ndjson_rows(lines: Iterable[str | bytes]) -> Iterator[Row]:
    """The rows of NDJSON, numbered by line from 1; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as exc:
            yield number, _Unread(f"not JSON: {exc}")


def json_rows(document: Any) -> Iterator[Row]:
    """The rows of a JSON list, numbered by position from 1."""
    if not isinstance(document, list):
        raise errors.InvalidInput("expected a JSON list of rows, or NDJSON", "body")
    yield from enumerate(document, start=1)


def csv_rows(lines: Iterable[str]) -> Iterator[Row]:
    """The rows of a CSV file with a header line, numbered by the line they start on."""
    reader = csv.DictReader(iter(lines))
    start = reader.line_num + 1
    for record in reader:
        if None in record:
            yield start, _Unread("more cells than the header names")
        else:
            cells = {key.strip(): (value or "").strip() for key, value in record.items() if key}
            yield start, cells
        start = reader.line_num + 1


class _Unread(str):
    """Why a line could not be read; ``SubscriberImport.run`` reports it as ``Unreadable``."""
