"""Bounces and complaints by mail: real relay, real bounce listener, reports as MTAs write them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import aiosmtplib
import pytest
from sqlalchemy import select

from notifier.clock import FrozenClock
from notifier.mail import reports as report_kinds
from notifier.service import Notifier
from notifier.store.models import Bounce, WebhookEvent
from tests import reports
from tests.conftest import event
from tests.smtpd import SmtpServer, free_port

BOUNCE_DOMAIN = "bounces.winparts.example"


@pytest.fixture
async def engine(make_engine: Callable[..., Notifier]) -> Notifier:
    """An engine with its bounce listener running (``start`` would also wake the sender)."""
    engine = make_engine(bounce_domain=BOUNCE_DOMAIN, bounce_smtp_port=free_port())
    assert engine.bounce_listener is not None
    engine.bounce_listener.start()
    return engine


async def sent_mail(engine: Notifier, smtp_server: SmtpServer) -> tuple[str, str, str]:
    """An order confirmation sent through the relay: its outbox id, VERP sender, Message-ID."""
    accepted = engine.handle_event(event("order.placed"))
    assert await engine.dispatch_due() == 1
    [mail] = smtp_server.received
    return accepted.body["messages"][0]["id"], mail.sender, str(mail.message["Message-ID"])


async def report(engine: Notifier, to: str, data: bytes) -> None:
    listener = engine.bounce_listener
    assert listener is not None
    async with aiosmtplib.SMTP(hostname=listener.host, port=listener.port) as client:
        await client.sendmail("", [to], data)


def attempt_outcomes(engine: Notifier, message_id: str, customer_id: str = "C42") -> list[str]:
    """The message's delivery attempts, oldest first, as the customer's data export shows them."""
    [message] = [m for m in engine.privacy.export(customer_id)["messages"] if m["id"] == message_id]
    return [attempt["outcome"] for attempt in message["delivery_attempts"]]


@pytest.mark.parametrize("write", [reports.postfix_dsn, reports.exim_dsn], ids=["postfix", "exim"])
async def test_a_hard_bounce_marks_the_message_bounced_and_suppresses_the_address(
    engine: Notifier, smtp_server: SmtpServer, write: Callable[[str, str], bytes]
) -> None:
    message_id, verp, header = await sent_mail(engine, smtp_server)
    await report(engine, verp, write(verp, header))

    message = engine.get_message(message_id)
    assert message.status == "bounced"
    assert message.last_error is not None and message.last_error.startswith("5.")
    assert "jan@example.nl" not in message.last_error
    assert reports.suppression_of(engine, "jan@example.nl") == "hard_bounce"
    assert attempt_outcomes(engine, message_id) == ["sent", "bounced"]
    assert {row.status: row.count for row in engine.status().depth}["bounced"] == 1
    assert 'notifier_messages{category="order_updates",status="bounced"} 1.0' in (
        engine.metrics.render().decode()
    )
    # The address gets no more mail.
    engine.handle_event(event("order.shipped"))
    await engine.dispatch_due()
    assert len(smtp_server.received) == 1


async def test_the_same_bounce_twice_changes_nothing_more(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    message_id, verp, header = await sent_mail(engine, smtp_server)
    for _ in range(2):
        await report(engine, verp, reports.postfix_dsn(verp, header))
    assert engine.get_message(message_id).status == "bounced"
    assert [row.kind for row in engine.feedback.recent()] == ["hard_bounce", "hard_bounce"]


async def test_a_transient_failure_is_put_on_record_only(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    message_id, verp, header = await sent_mail(engine, smtp_server)
    await report(engine, verp, reports.postfix_dsn(verp, header, "4.2.2", "delayed"))

    message = engine.get_message(message_id)
    assert message.status == "sent"
    assert message.last_error is not None and message.last_error.startswith("4.2.2")
    assert attempt_outcomes(engine, message_id) == ["sent", "delayed"]
    assert reports.suppression_of(engine, "jan@example.nl") is None


async def test_a_complaint_unsubscribes_the_category_and_the_newsletter(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    message_id, verp, header = await sent_mail(engine, smtp_server)
    engine.choices.update("C42", {"newsletter": True}, source="account")
    await report(engine, verp, reports.arf_complaint(verp, header))

    assert engine.get_message(message_id).status == "sent"
    states = engine.choices.states("C42")
    assert states["order_updates"] is False and states["newsletter"] is False
    assert states["reviews"] is True
    assert reports.suppression_of(engine, "jan@example.nl") == "complaint"
    assert attempt_outcomes(engine, message_id) == ["sent", "complained"]
    [kept] = engine.feedback.recent()
    assert kept.kind == "complaint" and kept.message_id == message_id


async def test_an_auto_reply_is_kept_and_changes_nothing(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    message_id, verp, _ = await sent_mail(engine, smtp_server)
    await report(engine, verp, reports.auto_reply(verp))

    assert engine.get_message(message_id).status == "sent"
    assert reports.suppression_of(engine, "jan@example.nl") is None
    assert attempt_outcomes(engine, message_id) == ["sent"]
    [kept] = engine.feedback.recent()
    assert kept.kind == report_kinds.AUTO_REPLY and kept.message_id == message_id
    # Physical storage on purpose: the kept report sealed at rest, which no look-up shows.
    with engine.database.transaction() as session:
        [row] = session.scalars(select(Bounce))
        assert row.raw is not None and b"afwezig" not in row.raw, "the kept report is sealed"
        assert b"afwezig" in engine.sealer.open(row.raw)


async def test_an_unreadable_report_is_kept(engine: Notifier, smtp_server: SmtpServer) -> None:
    _, verp, _ = await sent_mail(engine, smtp_server)
    await report(engine, verp, b"Subject: ?\r\n\r\n\xff\xfe garbage\r\n")
    assert [row.kind for row in engine.feedback.recent()] == [report_kinds.UNPARSED]


async def test_a_forged_verp_address_is_refused_at_rcpt(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    _, verp, header = await sent_mail(engine, smtp_server)
    forged = verp[: verp.index("-") + 1] + "0" * 20 + "@" + BOUNCE_DOMAIN
    for address in (forged, f"postmaster@{BOUNCE_DOMAIN}"):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await report(engine, address, reports.postfix_dsn(address, header))
        assert refused.value.recipients[0].code == 550
    assert engine.feedback.recent() == []


def test_postfix_and_exim_reports_read_as_the_mta_meant() -> None:
    verp, header = "bounce+x@b.example", "<1@winparts.example>"
    hard = report_kinds.parse(reports.postfix_dsn(verp, header))
    assert (hard.kind, hard.status, hard.recipients) == (
        "hard_bounce",
        "5.1.1",
        ("jan@example.nl",),
    )
    assert hard.message_ids == (header,)
    assert report_kinds.parse(reports.exim_dsn(verp, header)).message_ids == (header,)
    complaint = report_kinds.parse(reports.arf_complaint(verp, header))
    assert complaint.kind == "complaint" and complaint.recipients == ("jan@example.nl",)


async def test_bounces_and_complaints_are_told_to_the_shop_in_the_same_transaction(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer
) -> None:
    engine = make_engine(
        bounce_domain=BOUNCE_DOMAIN,
        webhook_url="http://127.0.0.1:9/hooks",
        webhook_secret="whsec_" + "A" * 32,
    )
    _, verp, header = await sent_mail(engine, smtp_server)
    engine.choices.update("C42", {"newsletter": True}, source="account")
    engine.feedback.receive_mail([verp], reports.arf_complaint(verp, header))
    engine.feedback.receive_mail([verp], reports.postfix_dsn(verp, header))
    # No look-up lists the queued webhook events: the shop sees them only once delivered.
    with engine.database.transaction() as session:
        rows = session.scalars(select(WebhookEvent).order_by(WebhookEvent.type))
        told = sorted((row.type, row.data.get("category") or row.data["kind"]) for row in rows)
    assert told == [
        ("customer.unsubscribed", "newsletter"),
        ("customer.unsubscribed", "order_updates"),
        ("message.bounced", "order_confirmation"),
        ("message.complained", "order_confirmation"),
        ("message.sent", "order_confirmation"),
    ]


async def test_a_second_listener_on_the_same_port_steps_aside(
    engine: Notifier, make_engine: Callable[..., Notifier]
) -> None:
    assert engine.bounce_listener is not None
    other = make_engine(bounce_domain=BOUNCE_DOMAIN, bounce_smtp_port=engine.bounce_listener.port)
    assert other.bounce_listener is not None
    assert other.bounce_listener.start() is False
    other.bounce_listener.stop()


async def test_kept_reports_go_with_the_retention_period(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    _, verp, _ = await sent_mail(engine, smtp_server)
    await report(engine, verp, reports.auto_reply(verp))
    clock.advance(timedelta(days=engine.settings.retention_days - 1))
    await engine.purge_expired()
    assert len(engine.feedback.recent()) == 1
    clock.advance(timedelta(days=2))
    await engine.purge_expired()
    assert engine.feedback.recent() == []
