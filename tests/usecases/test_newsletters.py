"""Newsletter campaigns: audience, fan-out at scale, resumption, cron, cancel, progress."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from notifier import errors
from notifier.clock import FrozenClock
from notifier.schemas import MessageOut
from notifier.service import Notifier
from notifier.store import outbox
from notifier.store.models import CampaignRun, Message
from tests.campaigns import CONTENT, add_subscribers
from tests.conftest import AMSTERDAM, START
from tests.smtpd import SmtpServer

SUBJECTS = {"nl": "Winterklaar met Winparts", "en": "Winter-ready with Winparts"}


def campaign(**changes: Any) -> dict[str, Any]:
    return {"id": "winter-2026", "subjects": SUBJECTS, "content": CONTENT} | changes


def subscribers(count: int) -> list[str]:
    """The ids ``add_subscribers`` gives its first ``count`` customers."""
    return [f"N{number:07d}" for number in range(count)]


def newsletter_mail(engine: Notifier, customer_id: str) -> list[MessageOut]:
    """The newsletters in the customer's history: the one campaign's mail in each test here."""
    return [m for m in engine.customer_messages(customer_id) if m.kind == "newsletter"]


def queued_for(engine: Notifier, customer_ids: list[str]) -> Counter[str]:
    """How many newsletters each of ``customer_ids`` was queued; those queued none left out."""
    return +Counter(
        {customer_id: len(newsletter_mail(engine, customer_id)) for customer_id in customer_ids}
    )


def queued_in_all(engine: Notifier, campaign_id: str) -> int:
    """How many messages the campaign has queued, whatever became of them since."""
    counts: dict[str, int] = engine.newsletters.get(campaign_id).progress.model_dump()
    return sum(counts.values()) - counts["targeted"]


async def test_campaign_reaches_confirmed_unsuppressed_subscribers_once(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    add_subscribers(engine, 30, confirmed_every=2)
    engine.choices.suppress("lezer0@example.nl", "complaint")
    engine.choices.suppress("lezer2@example.nl", "hard_bounce")
    engine.choices.update("N0000004", {"newsletter": False}, source="account")
    out, created = engine.newsletters.create(campaign())
    assert created and out.status == "scheduled"

    assert engine.newsletters.advance() == 12
    assert await engine.dispatch_due() == 12
    received = smtp_server.received
    assert sorted(r.recipients[0] for r in received) == sorted(
        f"lezer{n}@example.nl" for n in range(6, 30, 2)
    )
    by_locale = Counter(str(r.message["Content-Language"]) for r in received)
    assert set(by_locale) == {"nl", "en", "nl-BE"} or set(by_locale) == {"nl", "en"}
    subjects = {str(r.message["Subject"]) for r in received}
    assert subjects <= set(SUBJECTS.values()) and len(subjects) == 2
    assert all(r.message["List-Unsubscribe"] for r in received)
    assert all("newsletter.winparts.example" in str(r.message["List-Id"]) for r in received)

    progress = engine.newsletters.get("winter-2026")
    assert progress.status == "done"
    assert progress.progress.targeted == 12 and progress.progress.sent == 12
    assert engine.newsletters.advance() == 0


async def test_unsubscribing_after_fan_out_still_stops_the_mail(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    add_subscribers(engine, 3)
    engine.newsletters.create(campaign())
    engine.newsletters.advance()
    engine.choices.update("N0000001", {"newsletter": False}, source="account")
    await engine.dispatch_due()
    assert len(smtp_server.received) == 2
    progress = engine.newsletters.get("winter-2026").progress
    assert (progress.sent, progress.suppressed) == (2, 1)


def test_campaign_waits_for_send_at_and_the_send_window(
    engine: Notifier, clock: FrozenClock
) -> None:
    add_subscribers(engine, 2)
    evening = START.replace(hour=21, minute=30)
    engine.newsletters.create(campaign(send_at=evening.isoformat()))
    assert engine.newsletters.advance() == 0
    clock.set(evening)
    assert engine.newsletters.advance() == 2
    due = {
        m.send_after for customer_id in subscribers(2) for m in newsletter_mail(engine, customer_id)
    }
    assert due == {(evening + timedelta(days=1)).replace(hour=9, minute=0).astimezone(AMSTERDAM)}


def test_cron_campaign_runs_every_week(engine: Notifier, clock: FrozenClock) -> None:
    add_subscribers(engine, 4)
    out, _ = engine.newsletters.create(campaign(cron="0 10 * * 1"))  # Mondays 10:00 local
    assert out.next_run_at == START + timedelta(days=7)
    clock.set(START + timedelta(days=7))
    assert engine.newsletters.advance() == 4
    assert engine.newsletters.get("winter-2026").status == "scheduled"
    assert engine.newsletters.advance() == 0
    clock.set(START + timedelta(days=14))
    assert engine.newsletters.advance() == 4
    assert set(queued_for(engine, subscribers(4)).values()) == {2}


def test_cancel_stops_future_runs_and_unsent_mail(engine: Notifier) -> None:
    add_subscribers(engine, 5)
    engine.newsletters.create(campaign())
    engine.newsletters.advance()
    out = engine.newsletters.cancel("winter-2026")
    assert out.status == "cancelled" and out.progress.cancelled == 5
    assert engine.newsletters.advance() == 0
    assert engine.newsletters.cancel("winter-2026").status == "cancelled"
    with pytest.raises(errors.NotFound):
        engine.newsletters.cancel("nope")


def test_same_campaign_id_is_idempotent(engine: Notifier) -> None:
    first, created = engine.newsletters.create(campaign())
    again, created_again = engine.newsletters.create(campaign(subjects={"nl": "Anders"}))
    assert created and not created_again
    assert again.subjects == first.subjects


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"content": {"title": "no items"}}, "content"),
        ({"cron": "every monday"}, "cron"),
        ({"cron": "0 9 * * 1", "send_at": START.isoformat()}, "cron"),
    ],
)
def test_invalid_campaigns_are_refused(
    engine: Notifier, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        engine.newsletters.create(campaign(**changes))
    assert caught.value.field == field
    with pytest.raises(errors.NotFound):
        engine.newsletters.get("winter-2026")


def crash_fan_out_on_third_page(engine: Notifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fan out in pages of 500 until the third page's write dies, as a killed worker would.

    The store's real write is back in place when this returns, as after a restart.
    """
    real = outbox.add_for_audience
    pages = 0

    def crash_on_third_page(*args: Any, **kwargs: Any) -> int:
        nonlocal pages
        pages += 1
        if pages == 3:
            raise RuntimeError("worker killed mid fan-out")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(outbox, "add_for_audience", crash_on_third_page)
        engine.newsletters.advance(page_size=500)


def test_fan_out_resumes_after_a_crash_without_sending_twice(
    engine: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_subscribers(engine, 2500)
    engine.newsletters.create(campaign())
    crash_fan_out_on_third_page(engine, monkeypatch)
    assert queued_in_all(engine, "winter-2026") == 1000

    assert engine.newsletters.advance(page_size=500) == 1500
    counts = queued_for(engine, subscribers(2500))
    assert len(counts) == 2500 and set(counts.values()) == {1}
    assert engine.newsletters.get("winter-2026").progress.targeted == 2500

    # Even a run fanned out again from the start queues nobody twice.
    # Arranges a state: the run's cursor back at the start, which no operation does.
    with engine.database.transaction() as session:
        session.execute(update(CampaignRun).values(cursor=None, finished_at=None))
    assert engine.newsletters.advance(page_size=500) == 0
    assert set(queued_for(engine, subscribers(2500)).values()) == {1}


def test_erasure_leaves_no_customer_id_in_a_run_and_the_fan_out_resumes_in_place(
    engine: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_subscribers(engine, 1500)
    engine.newsletters.create(campaign())
    crash_fan_out_on_third_page(engine, monkeypatch)

    def runs() -> list[tuple[str | None, bool]]:
        """Each run's cursor, and whether it finished."""
        # Physical storage on purpose: the customer id in a run's cursor, which no look-up shows.
        with engine.database.transaction() as session:
            rows = session.execute(select(CampaignRun.cursor, CampaignRun.finished_at))
            return [(cursor, finished is not None) for cursor, finished in rows]

    assert runs() == [("N0000999", False)]
    engine.privacy.erase("N0000999")  # the cursor itself
    engine.privacy.erase("N0000500")  # one queued before it
    assert runs() == [("N0000998", False)]
    # Physical storage on purpose: no stored message id holds an erased customer's id.
    with engine.database.transaction() as session:
        ids = list(session.scalars(select(Message.id)))
    assert not [i for i in ids if i.endswith(("N0000999", "N0000500"))]
    erased = [i for i in ids if "-erased-" in i]
    assert len(erased) == 2 and erased[0] != erased[1]  # not linked to each other either

    assert engine.newsletters.advance(page_size=500) == 500  # resumes where it was
    erased_ids = ("N0000999", "N0000500")
    counts = queued_for(engine, [c for c in subscribers(1500) if c not in erased_ids])
    assert len(counts) == 1500 - 2 and set(counts.values()) == {1}
    assert all(engine.customer_messages(customer_id) == [] for customer_id in erased_ids)
    # The erased customers' two messages stay as counts of nobody's locale.
    assert engine.newsletters.get("winter-2026").progress_by_locale[""].targeted == 2
    assert runs() == [(None, True)]  # a finished run keeps no customer id


@pytest.mark.slow
def test_fifty_thousand_subscribers_fan_out_streaming(engine: Notifier) -> None:
    add_subscribers(engine, 60_000, confirmed_every=6, start=0)  # 10,000 confirmed
    add_subscribers(engine, 40_000, start=60_000)  # 40,000 more confirmed
    for number in range(60_000, 60_100):
        engine.choices.suppress(f"lezer{number}@example.nl", "manual")
    engine.newsletters.create(campaign())

    tracemalloc.start()
    try:
        queued = engine.newsletters.advance()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert queued == 50_000 - 100
    # Kept: one query counts 49,900 customers' mail; a look-up per customer would not scale.
    with engine.database.transaction() as session:
        total, distinct = session.execute(
            select(func.count(), func.count(func.distinct(Message.customer_id))).where(
                Message.campaign_id == "winter-2026"
            )
        ).one()
    assert total == distinct == 49_900
    # A full load of 50,000 audience rows would take far more; streaming keeps Python flat.
    assert peak < 8 * 1024 * 1024, f"fan-out peaked at {peak / 1e6:.1f} MB of Python memory"
