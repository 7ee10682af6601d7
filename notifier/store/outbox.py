"""The outbox: every status transition of a message happens here, and only here.

Workers claim due messages with a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite serialises writers, so a plain select-then-update inside
``BEGIN IMMEDIATE`` is already exclusive). Outcomes are written by one
function, ``record``, keyed by the status each leads to: one executemany
per status for the update and one for the attempt log.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from notifier import errors
from notifier.crypto import Sealer
from notifier.store import workers
from notifier.store.models import (
    FINAL,
    PENDING,
    DeliveryAttempt,
    FailureReason,
    Message,
    MessageStatus,
)
from notifier.vocabulary import AttemptOutcome

_messages = cast(Table, Message.__table__)
_attempts = cast(Table, DeliveryAttempt.__table__)


@dataclass(frozen=True)
class NewMessage:
    """A message to queue, with the moment it was queued (its ``created_at`` and ``updated_at``)."""

    id: str
    customer_id: str
    kind: str
    category: str
    send_after: datetime
    context: dict[str, Any]
    created_at: datetime
    event_id: str | None = None
    order_id: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class Claimed:
    """A message leased to one worker, its context opened for rendering."""

    id: str
    customer_id: str
    campaign_id: str | None
    kind: str
    category: str
    context: dict[str, Any]
    attempts: int
    created_at: datetime
    first_attempt_at: datetime
    shredded: bool = False
    """Its context no longer opens: the customer's data key was destroyed (erasure)."""

    @property
    def attempt(self) -> int:
        """The number of the attempt about to be made."""
        return self.attempts + 1


@dataclass(frozen=True)
class Outcome:
    """What came of one attempt; ``retry_at`` only for a retry, ``failure`` only for a failure.

    ``at`` is when the attempt ended (the server's reply), so each attempt
    row carries its own moment; None means the moment it is recorded.
    """

    id: str
    attempt: int
    detail: str | None = None
    smtp_code: int | None = None
    message_id: str | None = None
    locale: str | None = None
    retry_at: datetime | None = None
    failure: FailureReason | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Retried:
    """A failed message put back in the queue."""

    id: str
    kind: str


def add(session: Session, sealer: Sealer, messages: Sequence[NewMessage]) -> None:
    """Queue new messages as ``scheduled``, each at its own ``created_at``, context sealed.

    One Core INSERT, executed at once (an executemany for several, also for a
    group of events queued at different times): a message id that exists
    already fails here, as ``Duplicate`` from the transaction or savepoint.
    Intake runs this for every event, and ORM objects and a flush cost
    several times the insert itself.
    """
    if not messages:
        return
    session.connection().execute(
        _ADD,
        [
            {
                "id": new.id,
                "customer_id": new.customer_id,
                "event_id": new.event_id,
                "order_id": new.order_id,
                "kind": new.kind,
                "category": new.category,
                "priority": new.priority,
                "context": sealer.seal_json(new.context, new.customer_id),
                "status": MessageStatus.SCHEDULED,
                "send_after": new.send_after,
                "attempts": 0,
                "created_at": new.created_at,
                "updated_at": new.created_at,
            }
            for new in messages
        ],
    )


# Built once and executed on the session's connection: intake runs these for every event,
# and building a statement and going through ``Session.execute`` cost more than executing it.
_ADD = insert(_messages)


def get(session: Session, message_id: str) -> Message | None:
    return session.get(Message, message_id)


def get_many(session: Session, message_ids: Collection[str]) -> list[Message]:
    """The messages of ``message_ids`` that exist, in no particular order: one query."""
    if not message_ids:
        return []
    return list(session.scalars(select(Message).where(Message.id.in_(list(message_ids)))))


def history(session: Session, customer_id: str, limit: int = 500) -> list[Message]:
    """The customer's messages, newest first."""
    query = (
        select(Message)
        .where(Message.customer_id == customer_id)
        .order_by(Message.created_at.desc(), Message.send_after.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def cancel(session: Session, message_id: str, now: datetime) -> Message:
    """Cancel one message that has not been sent; anything else is a conflict."""
    row = session.get(Message, message_id, with_for_update=True)
    if row is None:
        raise errors.NotFound(f"no message {message_id!r}")
    if row.status not in PENDING:
        raise errors.Conflict(f"message is {row.status.value}; only unsent mail can be cancelled")
    row.status = MessageStatus.CANCELLED
    row.reason = "cancelled by request"
    row.updated_at = now
    return row


def cancel_for_order(session: Session, order_id: str, reason: str, now: datetime) -> list[str]:
    """Cancel every unsent message of an order; returns their ids."""
    ids = list(
        session.scalars(
            select(Message.id).where(Message.order_id == order_id, Message.status.in_(PENDING))
        )
    )
    if ids:
        session.execute(
            update(_messages)
            .where(_messages.c.id.in_(ids), _messages.c.status.in_(PENDING))
            .values(status=MessageStatus.CANCELLED, reason=reason, updated_at=now)
        )
    return ids


def add_for_audience(
    session: Session,
    audience: Select[Any],
    *,
    id_prefix: str,
    campaign_id: str,
    kind: str,
    category: str,
    priority: int,
    send_after: datetime,
    now: datetime,
) -> int:
    """Queue one campaign message per customer id that ``audience`` selects, in the database.

    Ids are ``id_prefix + customer id``: a page fanned out twice (after a
    crash) inserts nothing new, so nobody gets the same run twice. Campaign
    messages carry no context of their own; the campaign holds it.
    """
    page = audience.subquery()
    rows = select(
        literal(id_prefix) + page.c.customer_id,
        page.c.customer_id,
        literal(campaign_id),
        literal(kind),
        literal(category),
        literal(priority),
        literal(MessageStatus.SCHEDULED.value),
        literal(send_after, _messages.c.send_after.type),
        literal(0),
        literal(now, _messages.c.created_at.type),
        literal(now, _messages.c.updated_at.type),
    ).where(page.c.customer_id.is_not(None))
    columns = [
        "id",
        "customer_id",
        "campaign_id",
        "kind",
        "category",
        "priority",
        "status",
        "send_after",
        "attempts",
        "created_at",
        "updated_at",
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(_messages)
        .from_select(columns, rows)
        .on_conflict_do_nothing()
        .returning(_messages.c.attempts)
    )
    # Counted from RETURNING: psycopg reports no rowcount for INSERT ... SELECT.
    return len(session.execute(statement).all())


def cancel_for_campaign(session: Session, campaign_id: str, now: datetime) -> int:
    """Cancel every unsent message of a campaign; returns how many."""
    result = session.execute(
        update(_messages)
        .where(_messages.c.campaign_id == campaign_id, _messages.c.status.in_(PENDING))
        .values(status=MessageStatus.CANCELLED, reason="campaign cancelled", updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


ERASED = "erased"
"""The customer id left on an erased customer's messages: they stay only as anonymous counts."""


def erase_customer(session: Session, customer_id: str, now: datetime) -> int:
    """Cancel the customer's unsent mail and strip every message of what linked it to them.

    Status, kind, category and times stay, so counts and metrics remain true;
    context, ids and the attempt log's texts go. Returns the messages touched.
    """
    mine = _messages.c.customer_id == customer_id
    session.execute(
        update(_messages)
        .where(mine, _messages.c.status.in_(PENDING))
        .values(status=MessageStatus.CANCELLED, reason="customer erased", updated_at=now)
    )
    ids = select(_messages.c.id).where(mine).scalar_subquery()
    session.execute(
        update(_attempts).where(_attempts.c.message_id.in_(ids)).values(detail=None, worker=None)
    )
    touched = session.execute(
        update(_messages)
        .where(mine)
        .values(
            customer_id=ERASED,
            context=None,
            order_id=None,
            event_id=None,
            last_error=None,
            message_id=None,
            updated_at=now,
        )
        .returning(_messages.c.id)
    ).all()
    return len(touched)


def purge_context(session: Session, older_than: datetime, limit: int = 5000) -> int:
    """Drop the order context of finished messages last touched before ``older_than``.

    The delivery status stays; what the mail said does not. Works in pages of
    ``limit`` so a large backlog never holds one huge transaction.
    """
    page = (
        select(_messages.c.id)
        .where(
            _messages.c.status.in_(FINAL),
            _messages.c.updated_at < older_than,
            _messages.c.context.is_not(None),
        )
        .limit(limit)
        .scalar_subquery()
    )
    purged = session.execute(
        update(_messages)
        .where(_messages.c.id.in_(page))
        .values(context=None)
        .returning(_messages.c.id)
    ).all()
    return len(purged)


def export_rows(session: Session, customer_id: str) -> list[Message]:
    """Every message of the customer, oldest first, for a data export."""
    query = select(Message).where(Message.customer_id == customer_id).order_by(Message.created_at)
    return list(session.scalars(query))


def attempts_of_customer(session: Session, customer_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every delivery attempt at the customer's messages, by message id, for a data export."""
    query = (
        select(
            _attempts.c.message_id,
            _attempts.c.attempt,
            _attempts.c.at,
            _attempts.c.outcome,
            _attempts.c.smtp_code,
            _attempts.c.detail,
        )
        .join(_messages, _messages.c.id == _attempts.c.message_id)
        .where(_messages.c.customer_id == customer_id)
        .order_by(_attempts.c.message_id, _attempts.c.attempt, _attempts.c.id)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for message_id, attempt, at, outcome, smtp_code, detail in session.execute(query):
        found.setdefault(message_id, []).append(
            {
                "attempt": attempt,
                "at": at.isoformat(),
                "outcome": outcome,
                "smtp_code": smtp_code,
                "smtp_reply": detail,
            }
        )
    return found


def lease_due(
    session: Session,
    *,
    owner: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    only: Collection[str] | None = None,
    dead_before: datetime | None = None,
) -> list[str]:
    """Lease up to ``limit`` due messages to ``owner``: their ids, highest priority, then oldest
    due first; ``claimed`` then reads them.

    Selects messages that are ``scheduled`` or ``retrying`` with
    ``send_after <= now``, and messages still ``sending`` whose worker is
    gone: their lease expired, or (given ``dead_before``) their owner is
    another worker whose heartbeat row (``store.workers``) was last written
    before ``dead_before``. Rows another worker holds locked are skipped. A
    message taken over gets an attempt row of outcome ``lease_expired``: the
    dead worker may have sent it, so a duplicate is possible and on record.
    ``only`` limits the claim to those ids (the dispatcher's express lane for
    mail that was just queued).

    Each status is read on its own, one priority at a time, in the order of
    ``ix_messages_due`` and no further than ``limit``; the candidates are then
    merged. One query with the whole condition made SQLite collect every due
    row and sort them (a multi-index OR): under a 1,000,000-recipient
    campaign each claim read a million index entries, and the ~30 MB it
    took stayed in each thread's heap (the sending process peaked at 291 MB).
    """
    gone = _messages.c.lease_expires_at < now
    if dead_before is not None:
        gone = or_(
            gone,
            and_(
                _messages.c.lease_owner != owner,
                _messages.c.lease_owner.in_(workers.dead(dead_before).scalar_subquery()),
            ),
        )
    rows = _due(session, now=now, limit=limit, only=only, gone=gone)
    if not rows:
        return []
    ids = [row.id for row in rows]
    session.execute(
        update(_messages)
        .where(_messages.c.id.in_(ids))
        .values(
            status=MessageStatus.SENDING,
            lease_owner=owner,
            lease_expires_at=now + lease,
            first_attempt_at=func.coalesce(_messages.c.first_attempt_at, now),
            updated_at=now,
        )
    )
    expired = [row for row in rows if row.status == MessageStatus.SENDING]
    if expired:
        session.execute(
            update(_messages)
            .where(_messages.c.id == bindparam("b_id"))
            .values(attempts=bindparam("b_attempt")),
            [{"b_id": row.id, "b_attempt": row.attempts + 1} for row in expired],
        )
        session.execute(
            insert(_attempts),
            [
                {
                    "message_id": row.id,
                    "attempt": row.attempts + 1,
                    "at": now,
                    "outcome": AttemptOutcome.LEASE_EXPIRED,
                    "detail": _takeover_detail(row.lease_owner, row.lease_expires_at, now),
                    "worker": owner,
                }
                for row in expired
            ],
        )
    return ids


_CANDIDATE = (
    _messages.c.id,
    _messages.c.status,
    _messages.c.attempts,
    _messages.c.lease_owner,
    _messages.c.lease_expires_at,
    _messages.c.priority,
    _messages.c.send_after,
)
"""What ``lease_due`` reads of a candidate: enough to order, lease and take it over."""


def _due(
    session: Session,
    *,
    now: datetime,
    limit: int,
    only: Collection[str] | None,
    gone: ColumnElement[bool],
) -> list[Row[Any]]:
    """Up to ``limit`` candidates in claim order: ``sending`` ones whose worker is ``gone``, and
    each pending status's due mail one priority at a time (see ``lease_due``)."""
    locking = session.get_bind().dialect.name == "postgresql"

    def candidates(*where: ColumnElement[bool], first: int) -> Select[Any]:
        query = select(*_CANDIDATE).where(*where)
        if only is not None:
            query = query.where(_messages.c.id.in_(only))
        if locking:
            query = query.with_for_update(skip_locked=True)
        return query.limit(first)

    sending = candidates(_messages.c.status == MessageStatus.SENDING, gone, first=limit)
    found = list(session.execute(sending.order_by(_messages.c.priority, _messages.c.send_after)))
    for status in PENDING:
        taken = 0
        for priority in _priorities(session, status):
            due = candidates(
                _messages.c.status == status,
                _messages.c.priority == priority,
                _messages.c.send_after <= now,
                first=limit - taken,
            )
            rows = session.execute(due.order_by(_messages.c.send_after)).all()
            found += rows
            taken += len(rows)
            if taken >= limit:
                break
    found.sort(key=lambda row: (row.priority, row.send_after))
    return found[:limit]


def _priorities(session: Session, status: MessageStatus) -> Iterator[int]:
    """The priorities that messages in ``status`` have, lowest first, each found by one step
    down ``ix_messages_due`` (a ``MIN`` above the last), however many messages there are."""
    above: int | None = None
    while True:
        query = select(func.min(_messages.c.priority)).where(_messages.c.status == status)
        if above is not None:
            query = query.where(_messages.c.priority > above)
        priority = session.scalar(query)
        if priority is None:
            return
        yield priority
        above = priority


def claimed(session: Session, sealer: Sealer, ids: Sequence[str]) -> list[Claimed]:
    """The messages ``lease_due`` leased, in its order, their contexts decrypted.

    Read after the lease has committed (so SQLite's write lock is not held
    while decrypting): a message renamed by an erasure meanwhile is gone
    under its id, and left out, as there is no one left to send it to.
    """
    loaded = session.execute(
        select(
            _messages.c.id,
            _messages.c.customer_id,
            _messages.c.campaign_id,
            _messages.c.kind,
            _messages.c.category,
            _messages.c.context,
            _messages.c.attempts,
            _messages.c.created_at,
            _messages.c.first_attempt_at,
        ).where(_messages.c.id.in_(ids))
    ).all()
    by_id = {row.id: row for row in loaded}
    sealer.preload(row.context for row in loaded)  # one key store query for the batch
    opened = []
    for row in (by_id[message_id] for message_id in ids if message_id in by_id):
        context, shredded = _opened_context(sealer, row.context)
        opened.append(
            Claimed(
                id=row.id,
                customer_id=row.customer_id,
                campaign_id=row.campaign_id,
                kind=row.kind,
                category=row.category,
                context=context,
                attempts=row.attempts,
                created_at=row.created_at,
                first_attempt_at=row.first_attempt_at,
                shredded=shredded,
            )
        )
    return opened


def _opened_context(sealer: Sealer, sealed: bytes | None) -> tuple[dict[str, Any], bool]:
    """A claimed message's context, and whether it is shredded (then empty)."""
    if not sealed:
        return {}, False
    try:
        return sealer.open_json(sealed), False
    except errors.Shredded:
        return {}, True


def _takeover_detail(dead_owner: str | None, expired_at: datetime | None, now: datetime) -> str:
    if expired_at is not None and expired_at < now:
        return f"lease of {dead_owner} expired mid-send; may be delivered"
    return f"worker {dead_owner} stopped beating mid-send; may be delivered"


RECORDED = {
    MessageStatus.CANCELLED: AttemptOutcome.CANCELLED,
    MessageStatus.SENT: AttemptOutcome.SENT,
    MessageStatus.RETRYING: AttemptOutcome.TRANSIENT,
    MessageStatus.FAILED: AttemptOutcome.FAILED,
    MessageStatus.SUPPRESSED: AttemptOutcome.SUPPRESSED,
}
"""The statuses an attempt may end a ``sending`` message in, and what its attempt row says."""


def record(
    session: Session,
    owner: str,
    outcomes: Mapping[MessageStatus, Sequence[Outcome]],
    now: datetime,
) -> None:
    """``sending`` → the status each outcome is keyed by; one attempt row per outcome.

    ``sent``: the server accepted the message. ``retrying``: a transient
    failure, tried again at ``retry_at``. ``failed``: a permanent failure, or
    retries ran out. ``suppressed``: the customer's choices forbid it,
    ``detail`` says why; ``cancelled``: the customer is erased (their data
    key is gone), ``detail`` is the reason. Guarded by the lease: an outcome
    from ``owner`` after another worker took the message over changes no status, but its
    attempt is still logged, since it happened. Each attempt row and the
    message's times carry the outcome's ``at`` (``now`` if it has none).
    """
    for status, items in outcomes.items():
        if status not in RECORDED:
            raise ValueError(f"an attempt cannot end a message {status.value}")
        _finish(session, owner, items, now, status, RECORDED[status])


def retry_failed(
    session: Session,
    now: datetime,
    *,
    ids: Collection[str] | None = None,
    failed_since: datetime | None = None,
    kind: str | None = None,
) -> list[Retried]:
    """``failed`` → ``scheduled``, due ``now``: put failed messages back, e.g. after a template fix.

    Selects the ``failed`` messages among ``ids`` (all of them if None) that
    failed at or after ``failed_since`` and are of ``kind``, when given.
    Their attempt count and log stay, so the history is whole and the next
    attempt is numbered after the last; ``first_attempt_at`` is cleared, so
    transient failures get a fresh ``retry_max_age`` from the next attempt.
    Consent is not decided here: the claim checks it again, as for any send.
    """
    selected = _messages.c.status == MessageStatus.FAILED
    if ids is not None:
        if not ids:
            return []
        selected = and_(selected, _messages.c.id.in_(list(ids)))
    if failed_since is not None:
        selected = and_(selected, _messages.c.updated_at >= failed_since)
    if kind is not None:
        selected = and_(selected, _messages.c.kind == kind)
    rows = session.execute(
        update(_messages)
        .where(selected)
        .values(
            status=MessageStatus.SCHEDULED,
            send_after=now,
            reason=None,
            first_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .returning(_messages.c.id, _messages.c.kind)
    ).all()
    return [Retried(row.id, row.kind) for row in rows]


def failed(session: Session, limit: int = 100) -> list[Message]:
    """The messages that ended ``failed``, the latest failure first."""
    query = (
        select(Message)
        .where(Message.status == MessageStatus.FAILED)
        .order_by(Message.updated_at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def by_message_id(session: Session, header_values: Collection[str]) -> Message | None:
    """The message sent with one of these Message-ID header values, if any is still known."""
    if not header_values:
        return None
    query = select(Message).where(Message.message_id.in_(list(header_values))).limit(1)
    return session.scalars(query).first()


def mark_bounced(session: Session, message_id: str, detail: str, now: datetime) -> bool:
    """``sent`` → ``bounced``: a report after delivery says the mail never arrived (5.x.x).

    Logged as an attempt row of outcome ``bounced`` whatever the status; only
    a ``sent`` message changes (a bounce for one already bounced changes
    nothing). True if the status changed.
    """
    changed = session.execute(
        update(_messages)
        .where(_messages.c.id == message_id, _messages.c.status == MessageStatus.SENT)
        .values(status=MessageStatus.BOUNCED, last_error=detail, updated_at=now)
        .returning(_messages.c.id)
    ).all()
    _log_report(session, message_id, AttemptOutcome.BOUNCED, detail, now)
    return bool(changed)


def record_delayed(session: Session, message_id: str, detail: str, now: datetime) -> None:
    """A transient report (4.x.x) after delivery: on record as ``last_error``, status unchanged."""
    session.execute(
        update(_messages)
        .where(_messages.c.id == message_id)
        .values(last_error=detail, updated_at=now)
    )
    _log_report(session, message_id, AttemptOutcome.DELAYED, detail, now)


def record_complaint(session: Session, message_id: str, detail: str, now: datetime) -> None:
    """The recipient reported the mail as spam: on record, the status stays ``sent``."""
    _log_report(session, message_id, AttemptOutcome.COMPLAINED, detail, now)


def _log_report(
    session: Session, message_id: str, outcome: AttemptOutcome, detail: str, now: datetime
) -> None:
    attempts = select(_messages.c.attempts).where(_messages.c.id == message_id).scalar_subquery()
    session.execute(
        insert(_attempts).values(
            message_id=message_id, attempt=attempts, at=now, outcome=outcome, detail=detail
        )
    )


def release(session: Session, owner: str, ids: Sequence[str], now: datetime) -> None:
    """``sending`` → ``scheduled``: give back leased messages untried (a graceful stop).

    A message never tried before forgets the claim's ``first_attempt_at``:
    its retry budget (``retry_max_age``) counts from its first real attempt.
    """
    if not ids:
        return
    session.execute(
        update(_messages)
        .where(
            _messages.c.id.in_(ids),
            _messages.c.lease_owner == owner,
            _messages.c.status == MessageStatus.SENDING,
        )
        .values(
            status=MessageStatus.SCHEDULED,
            lease_owner=None,
            lease_expires_at=None,
            first_attempt_at=case(
                (_messages.c.attempts == 0, null()), else_=_messages.c.first_attempt_at
            ),
            updated_at=now,
        )
    )


def renew_leases(
    session: Session, owner: str, ids: Collection[str], now: datetime, lease: timedelta
) -> set[str]:
    """Extend the leases ``owner`` still holds on ``ids`` to ``now + lease``; returns those ids.

    Without this a worker slowed by a stalling server would lose batches it
    is still working on to a takeover, and the mail would go out twice. An
    id missing from the answer was taken over (or finished): the worker must
    not send it.
    """
    if not ids:
        return set()
    rows = session.execute(
        update(_messages)
        .where(
            _messages.c.id.in_(list(ids)),
            _messages.c.lease_owner == owner,
            _messages.c.status == MessageStatus.SENDING,
        )
        .values(lease_expires_at=now + lease)
        .returning(_messages.c.id)
    ).all()
    return {row.id for row in rows}


def _finish(
    session: Session,
    owner: str,
    outcomes: Sequence[Outcome],
    now: datetime,
    status: MessageStatus,
    attempt_outcome: AttemptOutcome,
) -> None:
    """Write one status and its attempt rows for a batch, guarded by the lease (see ``record``)."""
    if not outcomes:
        return
    values: dict[str, Any] = {
        "status": status,
        "attempts": bindparam("b_attempt"),
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": bindparam("b_at"),
    }
    if status is MessageStatus.SENT:
        values |= {
            "sent_at": bindparam("b_at"),
            "message_id": bindparam("b_message_id"),
            "locale": bindparam("b_locale"),
        }
        values["last_error"] = None
    elif status is MessageStatus.RETRYING:
        values |= {"send_after": bindparam("b_retry_at"), "last_error": bindparam("b_detail")}
    elif status is MessageStatus.FAILED:
        values |= {"last_error": bindparam("b_detail"), "reason": bindparam("b_failure")}
    else:
        values["reason"] = bindparam("b_detail")
    session.execute(
        update(_messages)
        .where(
            _messages.c.id == bindparam("b_id"),
            _messages.c.lease_owner == owner,
            _messages.c.status == MessageStatus.SENDING,
        )
        .values(values),
        [
            {
                "b_id": item.id,
                "b_attempt": item.attempt,
                "b_message_id": item.message_id,
                "b_locale": item.locale,
                "b_retry_at": item.retry_at,
                "b_detail": item.detail,
                "b_failure": item.failure,
                "b_at": item.at or now,
            }
            for item in outcomes
        ],
    )
    session.execute(
        insert(_attempts),
        [
            {
                "message_id": item.id,
                "attempt": item.attempt,
                "at": item.at or now,
                "outcome": attempt_outcome,
                "smtp_code": item.smtp_code,
                "detail": item.detail,
                "worker": owner,
            }
            for item in outcomes
        ],
    )


def depth(session: Session) -> list[tuple[str, str, int]]:
    """Message counts by status and category, for ``notifier status`` and metrics."""
    query = select(Message.status, Message.category, func.count()).group_by(
        Message.status, Message.category
    )
    return [(status.value, category, count) for status, category, count in session.execute(query)]


def recent_errors(session: Session, limit: int = 10) -> list[Message]:
    query = (
        select(Message)
        .where(Message.last_error.is_not(None))
        .order_by(Message.updated_at.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
