"""Newsletter campaigns: create, follow, cancel, and the fan-out that queues them.

Fan-out streams the audience page by page inside the database (INSERT ...
SELECT), one transaction per page that also moves the run's cursor, so
memory stays flat for a million subscribers and a crash resumes where it
stopped without sending anyone the same run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from notifier import errors
from notifier.clock import Clock
from notifier.flows import campaigns as schedule
from notifier.flows import kinds, timing
from notifier.mail.assembly import Assembler
from notifier.schemas import CampaignIn, CampaignOut, CampaignProgress
from notifier.settings import Settings
from notifier.store import campaigns, outbox
from notifier.store.db import Database, Session
from notifier.store.models import Campaign
from notifier.vocabulary import CampaignStatus, Category

log = logging.getLogger(__name__)
PAGE_SIZE = 5000


@dataclass(frozen=True)
class _Sample:
    """A stand-in subscriber for the trial render of a new campaign."""

    id: str
    email: str
    name: str | None
    locale: str
    first_name: str | None = None


class Newsletters:
    def __init__(
        self,
        database: Database,
        assembler: Assembler,
        clock: Clock,
        settings: Settings,
        wake: Callable[[], None],
    ) -> None:
        self._db = database
        self._assembler = assembler
        self._clock = clock
        self._settings = settings
        self._wake = wake

    def create(self, data: CampaignIn | Mapping[str, Any]) -> tuple[CampaignOut, bool]:
        """Schedule a campaign; the same id again returns it unchanged (created False)."""
        request = data if isinstance(data, CampaignIn) else CampaignIn.model_validate(data)
        if request.send_at is not None and request.cron is not None:
            raise errors.InvalidInput("give send_at or cron, not both", "cron")
        now = self._clock.now()
        zone = self._settings.zone
        first = (
            schedule.next_run(request.cron, now, zone) if request.cron else request.send_at or now
        )
        assert first is not None
        self._trial_render(request)
        try:
            with self._db.transaction() as session:
                existing = campaigns.get(session, request.id)
                if existing is not None:
                    return self._out(session, existing), False
                row = campaigns.create(
                    session,
                    campaign_id=request.id,
                    kind=request.kind,
                    subjects=dict(request.subjects),
                    content=request.content,
                    send_at=request.send_at,
                    cron=request.cron,
                    next_run_at=max(first, now),
                    now=now,
                )
                created = self._out(session, row)
        except errors.Duplicate:
            return self.get(request.id), False
        log.info("campaign.created campaign=%s", request.id)
        return created, True

    def get(self, campaign_id: str) -> CampaignOut:
        with self._db.transaction() as session:
            return self._out(session, self._require(session, campaign_id))

    def cancel(self, campaign_id: str) -> CampaignOut:
        """Stop future runs and cancel every unsent message of the campaign."""
        now = self._clock.now()
        with self._db.transaction() as session:
            row = self._require(session, campaign_id, lock=True)
            if row.status == CampaignStatus.CANCELLED:
                return self._out(session, row)
            campaigns.cancel(session, row, now)
            outbox.cancel_for_campaign(session, campaign_id, now)
            out = self._out(session, row)
        log.info("campaign.cancelled campaign=%s", campaign_id)
        return out

    def advance(self, page_size: int = PAGE_SIZE) -> int:
        """Open the runs that are due and fan out every unfinished run; returns messages queued."""
        now = self._clock.now()
        with self._db.transaction() as session:
            for campaign in campaigns.due(session, now):
                assert campaign.next_run_at is not None
                send_after = timing.next_opening(
                    campaign.next_run_at, self._settings.send_window, self._settings.zone
                )
                following = schedule.next_run(
                    campaign.cron, campaign.next_run_at, self._settings.zone
                )
                campaigns.open_run(session, campaign, send_after, following, now)
            runs = campaigns.unfinished_runs(session)
        queued = sum(self._fan_out(run_id, page_size) for run_id in runs)
        if queued:
            self._wake()
        return queued

    def _fan_out(self, run_id: str, page_size: int) -> int:
        queued = 0
        while True:
            with self._db.transaction() as session:
                run = campaigns.lock_run(session, run_id)
                if run is None:
                    return queued
                bounds = campaigns.page_bounds(session, run.cursor, page_size)
                if bounds is None:
                    campaigns.finish_run(session, run, self._clock.now())
                    log.info("campaign.fanned_out campaign=%s run=%s", run.campaign_id, run.id)
                    return queued
                last, _count = bounds
                inserted = outbox.add_for_audience(
                    session,
                    campaigns.audience(run.cursor, last),
                    id_prefix=f"cmp-{run.id}-",
                    campaign_id=run.campaign_id,
                    kind="newsletter",
                    category=Category.NEWSLETTER,
                    priority=kinds.get("newsletter").priority,
                    send_after=run.send_after,
                    now=self._clock.now(),
                )
                campaigns.advance_run(session, run, last, inserted)
                queued += inserted

    def _trial_render(self, request: CampaignIn) -> None:
        locales = set(request.subjects) | {self._settings.default_locale}
        for locale in sorted(locales):
            sample = _Sample("preview", "preview@example.com", None, locale)
            context = {"newsletter": request.content, "subjects": request.subjects}
            try:
                self._assembler.assemble(f"campaign-{request.id}", "newsletter", sample, context)
            except errors.TemplateError as exc:
                raise errors.InvalidInput(
                    f"the newsletter template cannot use it: {exc}", "content"
                ) from exc

    def _require(self, session: Session, campaign_id: str, lock: bool = False) -> Campaign:
        row = campaigns.get(session, campaign_id, lock=lock)
        if row is None:
            raise errors.NotFound(f"no campaign {campaign_id!r}")
        return row

    def _out(self, session: Session, row: Campaign) -> CampaignOut:
        counts = campaigns.message_counts(session, row.id)
        return CampaignOut(
            id=row.id,
            kind=row.kind,
            status=row.status,
            subjects=row.subjects,
            send_at=row.send_at,
            cron=row.cron,
            next_run_at=row.next_run_at,
            progress=CampaignProgress(targeted=campaigns.targeted(session, row.id), **counts),
        )
