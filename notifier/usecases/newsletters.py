"""Newsletter campaigns: create, follow, cancel, and the fan-out that queues them.

Fan-out streams the audience page by page inside the database (INSERT ...
SELECT), one transaction per page that also moves the run's cursor, so
memory stays flat for a million subscribers and a crash resumes where it
stopped without sending anyone the same run twice.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from notifier import errors
from notifier.clock import Clock
from notifier.flows import campaigns as schedule
from notifier.flows import kinds, newsletter_content, timing
from notifier.mail import mail_size
from notifier.mail.assembly import Assembler, Letter
from notifier.recipient import Recipient
from notifier.schemas import CampaignIn, CampaignOut, CampaignProgress
from notifier.settings import Settings
from notifier.store import campaigns, outbox
from notifier.store.db import Database, Session
from notifier.store.models import Campaign
from notifier.vocabulary import CampaignStatus, Category

log = logging.getLogger(__name__)
PAGE_SIZE = 5000
_LIVE = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.DONE)
"""The states a campaign can be paused in: ``done`` has fanned out, its mail may still be going."""


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
        """Create a campaign, scheduled or as a draft; the same id again returns it unchanged.

        Refused (``InvalidInput`` naming the field) before anything is stored:
        an audience nobody is in, an audience locale no content reaches, and a
        mail over ``MAX_HTML`` in any locale.
        """
        request = data if isinstance(data, CampaignIn) else CampaignIn.model_validate(data)
        if request.send_at is not None and request.cron is not None:
            raise errors.InvalidInput("give send_at or cron, not both", "cron")
        now = self._clock.now()
        draft = request.status == CampaignStatus.DRAFT.value
        first = None if draft else self._first_run(request.cron, request.send_at)
        audience = request.audience.model_dump(exclude_defaults=True)
        with self._db.transaction() as session:
            existing = campaigns.get(session, request.id)
            if existing is not None:
                return self._out(session, existing), False
            self._check_audience(session, audience, request.content, request.fallback_locale, draft)
        warnings = self._trial_render(
            request.id, request.content, request.subjects, request.fallback_locale
        )
        try:
            with self._db.transaction() as session:
                row = campaigns.create(
                    session,
                    campaign_id=request.id,
                    kind=request.kind,
                    subjects=dict(request.subjects),
                    content=request.content,
                    audience=audience,
                    fallback_locale=request.fallback_locale,
                    status=CampaignStatus.DRAFT if draft else CampaignStatus.SCHEDULED,
                    send_at=request.send_at,
                    cron=request.cron,
                    next_run_at=None if first is None else max(first, now),
                    now=now,
                )
                created = self._out(session, row).model_copy(update={"warnings": warnings})
        except errors.Duplicate:
            return self.get(request.id), False
        log.info("campaign.created campaign=%s status=%s", request.id, row.status)
        return created, True

    def schedule(self, campaign_id: str) -> CampaignOut:
        """Schedule a draft at its ``send_at``, by its ``cron``, or now; a scheduled one stays."""
        now = self._clock.now()
        with self._db.transaction() as session:
            row = self._require(session, campaign_id, lock=True)
            if row.status != CampaignStatus.DRAFT:
                self._refuse_unless(row, CampaignStatus.SCHEDULED, "schedule")
                return self._out(session, row)
            self._check_audience(
                session, row.audience or {}, row.content, row.fallback_locale, draft=False
            )
            first = self._first_run(row.cron, row.send_at)
            row.status = CampaignStatus.SCHEDULED
            row.next_run_at = max(first, now)
            row.updated_at = now
            out = self._out(session, row)
        log.info("campaign.scheduled campaign=%s", campaign_id)
        return out

    def pause(self, campaign_id: str) -> CampaignOut:
        """Stop fan-out and park every unsent message until ``resume``; paused again is a no-op."""
        now = self._clock.now()
        with self._db.transaction() as session:
            row = self._require(session, campaign_id, lock=True)
            if row.status != CampaignStatus.PAUSED:
                self._refuse_unless(row, _LIVE, "pause")
                row.status = CampaignStatus.PAUSED
                row.updated_at = now
                campaigns.hold(session, campaign_id, now)
            out = self._out(session, row)
        log.info("campaign.paused campaign=%s", campaign_id)
        return out

    def resume(self, campaign_id: str) -> CampaignOut:
        """Go on where ``pause`` stopped; parked mail is due at the next send-window opening."""
        now = self._clock.now()
        with self._db.transaction() as session:
            row = self._require(session, campaign_id, lock=True)
            if row.status == CampaignStatus.PAUSED:
                row.status = campaigns.state_after_pause(session, row)
                row.updated_at = now
                due = timing.next_opening(now, self._settings.send_window, self._settings.zone)
                campaigns.release(session, campaign_id, due, now)
            else:
                self._refuse_unless(row, _LIVE, "resume")
            out = self._out(session, row)
        log.info("campaign.resumed campaign=%s", campaign_id)
        self._wake()
        return out

    def test_letters(self, campaign_id: str, to: Iterable[str], locale: str | None) -> list[Letter]:
        """The campaign's real mail in ``locale``, marked ``[TEST]``, once for each address."""
        with self._db.transaction() as session:
            row = self._require(session, campaign_id)
            context = campaigns.context(row)
        language = locale or self._settings.default_locale
        letters = []
        for number, address in enumerate(to):
            recipient = Recipient(f"test-{number}", address, None, language)
            key = f"campaign-test-{campaign_id}-{secrets.token_hex(6)}"
            letters.append(
                self._assembler.assemble(key, "newsletter", recipient, context, test=True)
            )
        log.info("campaign.test campaign=%s count=%d", campaign_id, len(letters))
        return letters

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
                selection = campaigns.selection(session, run.campaign_id)
                bounds = campaigns.page_bounds(session, run.cursor, page_size, selection)
                if bounds is None:
                    campaigns.finish_run(session, run, self._clock.now())
                    log.info("campaign.fanned_out campaign=%s run=%s", run.campaign_id, run.id)
                    return queued
                last, _count = bounds
                inserted = outbox.add_for_audience(
                    session,
                    campaigns.audience(run.cursor, last, selection),
                    id_prefix=campaigns.ID_PREFIX.format(run=run.id),
                    campaign_id=run.campaign_id,
                    kind="newsletter",
                    category=Category.NEWSLETTER,
                    priority=kinds.get("newsletter").priority,
                    send_after=run.send_after,
                    now=self._clock.now(),
                )
                campaigns.advance_run(session, run, last, inserted)
                queued += inserted

    def _first_run(self, cron: str | None, send_at: datetime | None) -> datetime:
        now = self._clock.now()
        first = schedule.next_run(cron, now, self._settings.zone) if cron else send_at or now
        assert first is not None
        return first

    def _check_audience(
        self,
        session: Session,
        audience: Mapping[str, Any],
        content: Mapping[str, Any],
        fallback: str | None,
        draft: bool,
    ) -> None:
        """Refuse a named audience nobody is in (but for a draft), or a locale no content reaches.

        A campaign to all subscribers is taken even before anybody has
        confirmed (it then reaches whoever has when it runs); a selection
        that matches nobody is a mistake (a misspelt tag) and named as one.
        """
        locales = campaigns.audience_locales(session, audience)
        if audience and not locales and not draft:
            raise errors.InvalidInput(
                "the audience selects no confirmed subscriber: nobody would get this campaign",
                "audience",
            )
        wanted = list(audience.get("locales") or ()) + locales
        missing = newsletter_content.unreached(
            content, wanted, self._settings.default_locale, fallback
        )
        if missing:
            raise errors.InvalidInput(
                f"no content reaches locale {', '.join(missing)}: add content for it "
                'or name a stand-in ("fallback_locale": "nl")',
                "content",
            )

    def _trial_render(
        self,
        campaign_id: str,
        content: Mapping[str, Any],
        subjects: Mapping[str, str],
        fallback: str | None,
    ) -> list[str]:
        """Render every locale's content once; refuse what cannot render or is too big.

        Returns the warnings for mails close to the limit.
        """
        keys = set(newsletter_content.by_locale(content)) - {newsletter_content.EVERYONE}
        locales = keys | set(subjects) | {self._settings.default_locale}
        context = newsletter_content.context(content, subjects, fallback)
        warnings = []
        for locale in sorted(locales):
            sample = Recipient("preview", "preview@example.com", None, locale)
            field = f"content.{locale}" if locale in keys else "content"
            try:
                letter = self._assembler.assemble(
                    f"campaign-{campaign_id}", "newsletter", sample, context
                )
            except errors.TemplateError as exc:
                raise errors.InvalidInput(
                    f"the newsletter template cannot use it: {exc}", field
                ) from exc
            size = letter.html_size
            verdict = mail_size.judge(size)
            if verdict is mail_size.Verdict.REFUSED:
                raise errors.InvalidInput(mail_size.describe(size, letter.locale), field)
            if verdict is mail_size.Verdict.WARNING:
                warnings.append(mail_size.describe(size, letter.locale))
        return warnings

    def _require(self, session: Session, campaign_id: str, lock: bool = False) -> Campaign:
        row = campaigns.get(session, campaign_id, lock=lock)
        if row is None:
            raise errors.NotFound(f"no campaign {campaign_id!r}")
        return row

    def _refuse_unless(
        self,
        row: Campaign,
        allowed: CampaignStatus | tuple[CampaignStatus, ...],
        action: str,
    ) -> None:
        if row.status not in (allowed if isinstance(allowed, tuple) else (allowed,)):
            raise errors.Conflict(f"a {row.status} campaign cannot {action}")

    def _out(self, session: Session, row: Campaign) -> CampaignOut:
        counts = campaigns.message_counts(session, row.id)
        by_locale = campaigns.counts_by_locale(session, row.id)
        return CampaignOut(
            id=row.id,
            kind=row.kind,
            status=row.status,
            subjects=row.subjects,
            audience=row.audience or {},
            audience_size=campaigns.audience_size(session, row.audience),
            progress_by_locale={
                locale: CampaignProgress(targeted=sum(found.values()), **found)
                for locale, found in by_locale.items()
            },
            send_at=row.send_at,
            cron=row.cron,
            next_run_at=row.next_run_at,
            progress=CampaignProgress(targeted=campaigns.targeted(session, row.id), **counts),
        )
