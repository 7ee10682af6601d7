"""Newsletter campaigns and their runs; the audience query that fan-out streams through."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select, true, update
from sqlalchemy.orm import Session

from notifier.store.models import Campaign, CampaignRun, Customer, Message, Preference, Suppression
from notifier.vocabulary import CampaignStatus, Category


def create(
    session: Session,
    *,
    campaign_id: str,
    kind: str,
    subjects: dict[str, str],
    content: dict[str, Any],
    send_at: datetime | None,
    cron: str | None,
    next_run_at: datetime,
    now: datetime,
) -> Campaign:
    row = Campaign(
        id=campaign_id,
        kind=kind,
        subjects=subjects,
        content=content,
        send_at=send_at,
        cron=cron,
        status=CampaignStatus.SCHEDULED,
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
    return {
        row.id: {"newsletter": row.content, "subjects": row.subjects}
        for row in session.scalars(query)
    }


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
    query = (
        select(CampaignRun.id)
        .where(CampaignRun.finished_at.is_(None))
        .order_by(CampaignRun.scheduled_for)
    )
    return list(session.scalars(query))


def lock_run(session: Session, run_id: str) -> CampaignRun | None:
    """The run, locked for one fan-out batch; None if finished or another worker holds it."""
    query = select(CampaignRun).where(CampaignRun.id == run_id, CampaignRun.finished_at.is_(None))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def audience(after: str | None, upto: str | None = None) -> Select[Any]:
    """Confirmed newsletter subscribers whose address is not suppressed, by customer id.

    Keyset-ordered so fan-out can stream it page by page: ids after ``after``
    up to and including ``upto``.
    """
    query = (
        select(Preference.customer_id)
        .join(Customer, Customer.id == Preference.customer_id)
        .outerjoin(Suppression, Suppression.email_index == Customer.email_index)
        .where(
            Preference.category == Category.NEWSLETTER,
            Preference.enabled == true(),
            Suppression.email_index.is_(None),
        )
    )
    if after is not None:
        query = query.where(Preference.customer_id > after)
    if upto is not None:
        query = query.where(Preference.customer_id <= upto)
    return query.order_by(Preference.customer_id)


def page_bounds(session: Session, after: str | None, size: int) -> tuple[str, int] | None:
    """The last customer id of the next audience page and the page's size; None when done."""
    page = audience(after).limit(size).subquery()
    last, count = session.execute(select(func.max(page.c.customer_id), func.count())).one()
    return (last, count) if count else None


def advance_run(session: Session, run: CampaignRun, cursor: str, targeted: int) -> None:
    run.cursor = cursor
    run.targeted += targeted


def finish_run(session: Session, run: CampaignRun, now: datetime) -> None:
    run.finished_at = now
    campaign = session.get(Campaign, run.campaign_id)
    if campaign is not None and campaign.status == CampaignStatus.RUNNING:
        campaign.status = (
            CampaignStatus.SCHEDULED if campaign.next_run_at is not None else CampaignStatus.DONE
        )
        campaign.updated_at = now


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
