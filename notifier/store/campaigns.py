"""Newsletter campaigns and their runs; the audience query that fan-out streams through."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from notifier.flows import newsletter_content
from notifier.mail import i18n
from notifier.store.models import (
    PENDING,
    Campaign,
    CampaignRun,
    Customer,
    DeliveryAttempt,
    Message,
    Preference,
    Suppression,
)
from notifier.vocabulary import CampaignStatus, Category

_messages = cast(Table, Message.__table__)
ID_PREFIX = "cmp-{run}-"
"""A campaign message's id is this and the customer id: a page fanned out twice inserts
nothing new. Erasure replaces the customer id (see :func:`forget_customer`)."""


def create(
    session: Session,
    *,
    campaign_id: str,
    kind: str,
    subjects: dict[str, str],
    content: dict[str, Any],
    audience: dict[str, Any],
    fallback_locale: str | None,
    status: CampaignStatus,
    send_at: datetime | None,
    cron: str | None,
    next_run_at: datetime | None,
    now: datetime,
) -> Campaign:
    row = Campaign(
        id=campaign_id,
        kind=kind,
        subjects=subjects,
        content=content,
        audience=audience,
        fallback_locale=fallback_locale,
        send_at=send_at,
        cron=cron,
        status=status,
        next_run_at=next_run_at,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign | None:
    return session.get(Campaign, campaign_id, with_for_update=lock)


def contexts(session: Session, campaign_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The template context shared by every message of each campaign."""
    query = select(Campaign).where(Campaign.id.in_(set(campaign_ids)))
    return {row.id: context(row) for row in session.scalars(query)}


def selection(session: Session, campaign_id: str) -> dict[str, Any]:
    """The campaign's audience (locales and tags); empty for all subscribers."""
    found = session.scalar(select(Campaign.audience).where(Campaign.id == campaign_id))
    return dict(found or {})


def context(row: Campaign) -> dict[str, Any]:
    """The template context of one campaign: its content, subjects and stand-in locale."""
    return newsletter_content.context(row.content, row.subjects, row.fallback_locale)


def due(session: Session, now: datetime, limit: int = 20) -> list[Campaign]:
    """Campaigns whose next run is due, locked so one worker opens each run."""
    query = (
        select(Campaign)
        .where(
            Campaign.status.in_((CampaignStatus.SCHEDULED, CampaignStatus.RUNNING)),
            Campaign.next_run_at <= now,
        )
        .order_by(Campaign.next_run_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def open_run(
    session: Session,
    campaign: Campaign,
    send_after: datetime,
    next_run_at: datetime | None,
    now: datetime,
) -> None:
    """Start the run due now and move the campaign on to its next run (if any)."""
    assert campaign.next_run_at is not None
    scheduled_for = campaign.next_run_at
    run_id = hashlib.sha256(f"{campaign.id}|{scheduled_for.isoformat()}".encode()).hexdigest()[:32]
    if session.get(CampaignRun, run_id) is None:
        session.add(
            CampaignRun(
                id=run_id,
                campaign_id=campaign.id,
                scheduled_for=scheduled_for,
                send_after=send_after,
                cursor=None,
                targeted=0,
            )
        )
    campaign.next_run_at = next_run_at
    campaign.status = CampaignStatus.RUNNING
    campaign.updated_at = now


def unfinished_runs(session: Session) -> list[str]:
    """Runs still fanning out, but for those of paused campaigns."""
    query = (
        select(CampaignRun.id)
        .join(Campaign, Campaign.id == CampaignRun.campaign_id)
        .where(CampaignRun.finished_at.is_(None), Campaign.status != CampaignStatus.PAUSED)
        .order_by(CampaignRun.scheduled_for)
    )
    return list(session.scalars(query))


def lock_run(session: Session, run_id: str) -> CampaignRun | None:
    """The run, locked for one fan-out batch; None if finished or another worker holds it."""
    query = select(CampaignRun).where(CampaignRun.id == run_id, CampaignRun.finished_at.is_(None))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def audience(
    after: str | None, upto: str | None = None, selection: Mapping[str, Any] | None = None
) -> Select[Any]:
    """Confirmed newsletter subscribers whose address is not suppressed, by customer id.

    Keyset-ordered so fan-out can stream it page by page: ids after ``after``
    up to and including ``upto``. ``selection`` is a campaign's audience
    (``locales``, ``tags_any``, ``tags_none``), tested in SQL so the whole
    page stays one statement inside the database.
    """
    query = (
        select(Preference.customer_id)
        .join(Customer, Customer.id == Preference.customer_id)
        .outerjoin(Suppression, Suppression.email_index == Customer.email_index)
        .where(
            Preference.category == Category.NEWSLETTER,
            Preference.enabled == true(),
            Suppression.email_index.is_(None),
            *_selected(selection or {}),
        )
    )
    if after is not None:
        query = query.where(Preference.customer_id > after)
    if upto is not None:
        query = query.where(Preference.customer_id <= upto)
    return query.order_by(Preference.customer_id)


def _selected(selection: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    locales = selection.get("locales")
    if locales:
        spoken = func.lower(func.replace(Customer.locale, "-", "_"))
        wanted = [i18n.normalize(locale) or locale for locale in locales]
        conditions.append(
            or_(
                spoken.in_([w.lower() for w in wanted]),
                *(
                    spoken.like(f"{_escaped(w.lower())}\\_%", escape="\\")
                    for w in wanted
                    if "_" not in w
                ),
            )
        )
    tags_any = selection.get("tags_any") or []
    if tags_any:
        conditions.append(
            or_(*(Customer.tags.like(f"%|{_escaped(tag)}|%", escape="\\") for tag in tags_any))
        )
    for tag in selection.get("tags_none") or []:
        conditions.append(
            func.coalesce(Customer.tags, "").not_like(f"%|{_escaped(tag)}|%", escape="\\")
        )
    return conditions


def _escaped(text: str) -> str:
    """``text`` matched literally by LIKE: a tag or locale with ``_`` is no wildcard."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def audience_size(session: Session, selection: Mapping[str, Any] | None) -> int:
    page = audience(None, None, selection).order_by(None).subquery()
    return int(session.scalar(select(func.count()).select_from(page)) or 0)


def audience_locales(session: Session, selection: Mapping[str, Any] | None) -> list[str]:
    """The distinct locales of the audience, for the check that content reaches each."""
    ids = audience(None, None, selection).order_by(None).subquery()
    query = select(Customer.locale).where(Customer.id.in_(select(ids.c.customer_id))).distinct()
    return sorted(session.scalars(query))


def page_bounds(
    session: Session, after: str | None, size: int, selection: Mapping[str, Any] | None = None
) -> tuple[str, int] | None:
    """The last customer id of the next audience page and the page's size; None when done."""
    page = audience(after, None, selection).limit(size).subquery()
    last, count = session.execute(select(func.max(page.c.customer_id), func.count())).one()
    return (last, count) if count else None


def advance_run(session: Session, run: CampaignRun, cursor: str, targeted: int) -> None:
    run.cursor = cursor
    run.targeted += targeted


def finish_run(session: Session, run: CampaignRun, now: datetime) -> None:
    """End the run's fan-out; its cursor (a customer id) goes, being needed no more."""
    run.finished_at = now
    run.cursor = None
    campaign = session.get(Campaign, run.campaign_id)
    if campaign is not None and campaign.status == CampaignStatus.RUNNING:
        campaign.status = (
            CampaignStatus.SCHEDULED if campaign.next_run_at is not None else CampaignStatus.DONE
        )
        campaign.updated_at = now


def state_after_pause(session: Session, campaign: Campaign) -> CampaignStatus:
    """What a resumed campaign is: running while a run fans out, else scheduled or done."""
    fanning = session.scalar(
        select(func.count())
        .select_from(CampaignRun)
        .where(CampaignRun.campaign_id == campaign.id, CampaignRun.finished_at.is_(None))
    )
    if fanning:
        return CampaignStatus.RUNNING
    return CampaignStatus.SCHEDULED if campaign.next_run_at is not None else CampaignStatus.DONE


PAUSED_UNTIL = datetime(2099, 1, 1, tzinfo=UTC)
"""Where a paused campaign's unsent messages wait: the dispatcher never claims them."""


def hold(session: Session, campaign_id: str, now: datetime) -> int:
    """Park the campaign's unsent messages until :func:`release`; returns how many."""
    return _move(session, campaign_id, PAUSED_UNTIL, now, Message.send_after < PAUSED_UNTIL)


def release(session: Session, campaign_id: str, send_after: datetime, now: datetime) -> int:
    """Make a paused campaign's parked messages due at ``send_after``."""
    return _move(session, campaign_id, send_after, now, Message.send_after >= PAUSED_UNTIL)


def _move(
    session: Session,
    campaign_id: str,
    send_after: datetime,
    now: datetime,
    which: ColumnElement[bool],
) -> int:
    result = session.execute(
        update(Message)
        .where(Message.campaign_id == campaign_id, Message.status.in_(PENDING), which)
        .values(send_after=send_after, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def cancel(session: Session, campaign: Campaign, now: datetime) -> None:
    campaign.status = CampaignStatus.CANCELLED
    campaign.next_run_at = None
    campaign.updated_at = now
    session.execute(
        update(CampaignRun)
        .where(and_(CampaignRun.campaign_id == campaign.id, CampaignRun.finished_at.is_(None)))
        .values(finished_at=now)
    )


def targeted(session: Session, campaign_id: str) -> int:
    query = select(func.coalesce(func.sum(CampaignRun.targeted), 0)).where(
        CampaignRun.campaign_id == campaign_id
    )
    return int(session.scalar(query) or 0)


def message_counts(session: Session, campaign_id: str) -> dict[str, int]:
    query = (
        select(Message.status, func.count())
        .where(Message.campaign_id == campaign_id)
        .group_by(Message.status)
    )
    return {status.value: count for status, count in session.execute(query)}


def counts_by_locale(session: Session, campaign_id: str) -> dict[str, dict[str, int]]:
    """Message counts by status for each subscriber locale (erased customers under "")."""
    query = (
        select(Customer.locale, Message.status, func.count())
        .select_from(Message)
        .outerjoin(Customer, Customer.id == Message.customer_id)
        .where(Message.campaign_id == campaign_id)
        .group_by(Customer.locale, Message.status)
    )
    found: dict[str, dict[str, int]] = {}
    for locale, status, count in session.execute(query):
        found.setdefault(locale or "", {})[status.value] = count
    return found


def forget_customer(session: Session, customer_id: str) -> int:
    """Erasure: leave the customer's id in no run cursor and no campaign message id.

    An unfinished run whose cursor is the customer moves back to the
    greatest customer id below it, which resumes at the same place (the
    customer, erased, is in no audience again); a finished run keeps no
    cursor. Each of the customer's campaign messages takes a random
    suffix in place of the customer id, so those left are neither named
    nor linked to one another: the row is copied under its new id, its
    attempt log follows, the old row goes. Unfinished runs are locked first
    (PostgreSQL), so no fan-out page queues the customer meanwhile.
    Returns the messages renamed.
    """
    unfinished = select(CampaignRun.id).where(CampaignRun.finished_at.is_(None))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(unfinished.with_for_update())
    below = (
        select(func.max(Preference.customer_id))
        .where(Preference.customer_id < customer_id)
        .scalar_subquery()
    )
    session.execute(
        update(CampaignRun)
        .where(CampaignRun.cursor == customer_id, CampaignRun.finished_at.is_(None))
        .values(cursor=below)
    )
    session.execute(
        update(CampaignRun).where(CampaignRun.cursor == customer_id).values(cursor=None)
    )
    found = session.execute(
        select(Message.id).where(
            Message.customer_id == customer_id, Message.campaign_id.is_not(None)
        )
    ).scalars()
    renamed = 0
    for old in list(found):
        if not old.endswith(f"-{customer_id}"):
            continue  # not of the fan-out's making
        new = old.removesuffix(customer_id) + "erased-" + secrets.token_hex(8)
        columns = [column.name for column in _messages.columns]
        copied = select(
            *(literal(new) if name == "id" else _messages.c[name] for name in columns)
        ).where(_messages.c.id == old)
        session.execute(insert(_messages).from_select(columns, copied))
        session.execute(
            update(DeliveryAttempt).where(DeliveryAttempt.message_id == old).values(message_id=new)
        )
        session.execute(delete(_messages).where(_messages.c.id == old))
        renamed += 1
    return renamed
