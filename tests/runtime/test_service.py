"""The engine end to end: events in, real mail out through a real SMTP server, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from notifier import errors
from notifier.clock import FrozenClock
from notifier.service import Notifier
from notifier.vocabulary import MessageStatus
from tests.conftest import AMSTERDAM, START, customer, event, order, until
from tests.smtpd import SmtpServer, body_of


def kinds_of(engine: Notifier, customer_id: str = "C42") -> dict[str, str]:
    return {m.kind: m.status for m in engine.customer_messages(customer_id)}


async def test_order_placed_sends_a_dutch_confirmation_at_once(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    accepted = engine.handle_event(event("order.placed"))
    assert accepted.created
    assert [m["kind"] for m in accepted.body["messages"]] == ["order_confirmation"]

    assert await engine.dispatch_due() == 1

    [mail] = smtp_server.received
    message = mail.message
    assert mail.recipients == ["jan@example.nl"]
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == "Jan de Vries <jan@example.nl>"
    assert message["Content-Language"] == "nl"
    assert "WP-1001" in message["Subject"]
    for header in ("Message-ID", "Date", "From", "Subject"):
        assert message[header]
    html = body_of(message, "html")
    text = body_of(message, "plain")
    assert '<html lang="nl"' in html
    assert "Remblokken voor" in html and "Remblokken voor" in text
    assert "€" in html and "123,45" in html
    assert message["List-Unsubscribe"].startswith("<https://notifier.test/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [sent] = engine.customer_messages("C42")
    assert sent.status == "sent" and sent.attempts == 1 and sent.sent_at == START


async def test_english_customer_gets_english_mail(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.handle_event(event("order.placed", locale="en_GB"))
    await engine.dispatch_due()
    message = smtp_server.received[0].message
    assert message["Content-Language"] == "en"
    html = body_of(message, "html")
    assert '<html lang="en"' in html
    assert "€123.45" in html


async def test_shipping_notice_carries_carrier_and_tracking_link(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.handle_event(event("order.shipped"))
    await engine.dispatch_due()
    message = smtp_server.received[0].message
    html = body_of(message, "html")
    text = body_of(message, "plain")
    assert "PostNL" in html
    assert "https://postnl.example/track/3SABC" in html
    assert "https://postnl.example/track/3SABC" in text


async def test_verification_question_is_escaped_essential_and_replies_to_service(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer
) -> None:
    engine = make_engine(reply_to="Klantenservice <klantenservice@winparts.example>")
    question = "Past dit op je <script>alert(1)</script> Golf 7?"
    engine.handle_event(event("order.verification_requested", data={"question": question}))
    await engine.dispatch_due()
    message = smtp_server.received[0].message
    html = body_of(message, "html")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert message["Reply-To"] == "Klantenservice <klantenservice@winparts.example>"
    assert message["List-Unsubscribe"] is None


def test_verification_without_a_question_is_refused(engine: Notifier) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        engine.handle_event(event("order.verification_requested", data={}))
    assert caught.value.field == "data.question"
    assert engine.customer_messages("C42") == []


async def test_reviews_wait_for_their_delays_and_the_send_window(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    delivered_at = START.replace(hour=19, minute=30)  # Monday evening
    engine.handle_event(event("order.delivered", at=delivered_at))
    scheduled = {
        m.kind: m.send_after.astimezone(AMSTERDAM) for m in engine.customer_messages("C42")
    }
    # 3 days after 19:30 is Thursday 19:30, inside the window; 10 days later likewise.
    assert scheduled["review_products"] == delivered_at + timedelta(days=3)
    assert scheduled["review_service"] == delivered_at + timedelta(days=10)

    clock.set(delivered_at + timedelta(days=3) - timedelta(minutes=1))
    assert await engine.dispatch_due() == 0
    clock.set(delivered_at + timedelta(days=3))
    assert await engine.dispatch_due() == 1
    assert kinds_of(engine) == {"review_products": "sent", "review_service": "scheduled"}
    clock.set(delivered_at + timedelta(days=10))
    assert await engine.dispatch_due() == 1
    assert len(smtp_server.received) == 2


def test_a_review_due_at_night_waits_for_the_morning(engine: Notifier) -> None:
    late = START.replace(hour=22, minute=15)
    engine.handle_event(event("order.delivered", at=late))
    due = {m.kind: m.send_after.astimezone(AMSTERDAM) for m in engine.customer_messages("C42")}
    assert due["review_products"] == (late + timedelta(days=4)).replace(hour=9, minute=0)


def test_reviews_count_from_shipped_when_configured(make_engine: Callable[..., Notifier]) -> None:
    engine = make_engine(review_from="shipped", review_products_delay="12h")
    engine.handle_event(event("order.shipped", at=START))
    assert kinds_of(engine) == {
        "shipping_notice": "scheduled",
        "review_products": "scheduled",
        "review_service": "scheduled",
    }
    engine.handle_event(event("order.delivered", at=START))
    assert len(engine.customer_messages("C42")) == 3


@pytest.mark.parametrize("cancelling", ["order.cancelled", "order.returned"])
async def test_cancel_and_return_stop_pending_reviews(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock, cancelling: str
) -> None:
    engine.handle_event(event("order.delivered", at=START))
    engine.handle_event(event(cancelling))
    assert set(kinds_of(engine).values()) == {"cancelled"}
    clock.advance(timedelta(days=11))
    assert await engine.dispatch_due() == 0
    assert smtp_server.received == []


def test_review_cap_allows_one_pair_per_ninety_days(engine: Notifier) -> None:
    engine.handle_event(event("order.delivered", at=START, order=order(id="O-1")))
    engine.handle_event(
        event("order.delivered", at=START + timedelta(days=30), order=order(id="O-2"))
    )
    engine.handle_event(
        event("order.delivered", at=START + timedelta(days=95), order=order(id="O-3"))
    )
    orders = [
        m.order_id or "" for m in engine.customer_messages("C42") if m.kind == "review_products"
    ]
    assert sorted(orders) == ["O-1", "O-3"]


def test_review_cap_off(make_engine: Callable[..., Notifier]) -> None:
    engine = make_engine(review_cap_days=0)
    engine.handle_event(event("order.delivered", order=order(id="O-1")))
    engine.handle_event(event("order.delivered", order=order(id="O-2")))
    assert len(engine.customer_messages("C42")) == 4


def test_the_same_order_delivered_twice_gets_one_review_pair(engine: Notifier) -> None:
    engine.handle_event(event("order.delivered"))
    engine.handle_event(event("order.delivered"))
    assert len(engine.customer_messages("C42")) == 2


async def test_idempotent_event_sends_one_mail(engine: Notifier, smtp_server: SmtpServer) -> None:
    first = engine.handle_event(event("order.placed", id="evt-1"))
    again = engine.handle_event(event("order.placed", id="evt-1"))
    assert not again.created and again.body == first.body
    await engine.dispatch_due()
    assert len(smtp_server.received) == 1


async def test_concurrent_duplicates_send_one_mail(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    barrier = threading.Barrier(8)
    answers = []

    def post() -> None:
        barrier.wait()
        answers.append(engine.handle_event(event("order.placed", id="evt-race")))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(answer.created for answer in answers) == 1
    assert len({str(answer.body) for answer in answers}) == 1
    await engine.dispatch_due()
    assert len(smtp_server.received) == 1


async def test_customer_update_applies_to_unsent_mail(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine.handle_event(event("order.delivered", at=START))
    engine.handle_event(
        event(
            "customer.updated",
            customer=customer("en", email="jan.new@example.com", name="Jan de Vries-Smit"),
        )
    )
    clock.advance(timedelta(days=3))
    await engine.dispatch_due()
    [mail] = smtp_server.received
    assert mail.recipients == ["jan.new@example.com"]
    assert mail.message["Content-Language"] == "en"
    assert "Jan de Vries-Smit" in mail.message["To"]


async def test_newsletter_subscribed_sends_the_confirm_mail(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.handle_event(event("newsletter.subscribed"))
    await engine.dispatch_due()
    message = smtp_server.received[0].message
    html = body_of(message, "html")
    assert "https://notifier.test/confirm/" in html
    assert message["List-Unsubscribe"] is None


async def test_transient_failure_retries_with_backoff_then_succeeds(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    smtp_server.fail_next("451 4.3.0 try again later")
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    [message] = engine.customer_messages("C42")
    assert message.status == "retrying"
    assert message.last_error == "451 4.3.0 try again later"
    assert timedelta(seconds=45) <= message.send_after - START <= timedelta(seconds=75)
    assert await engine.dispatch_due() == 0  # not yet due: no hot loop
    clock.advance(timedelta(minutes=2))
    await engine.dispatch_due()
    [message] = engine.customer_messages("C42")
    assert message.status == "sent" and message.attempts == 2
    assert len(smtp_server.received) == 1


async def test_permanent_failure_fails_at_once_with_the_reply(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    smtp_server.fail_next("550 5.1.1 no such user")
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    clock.advance(timedelta(days=1))
    assert await engine.dispatch_due() == 0
    [message] = engine.customer_messages("C42")
    assert message.status == "failed"
    assert message.attempts == 1
    assert message.last_error == "550 5.1.1 no such user"


async def test_retries_stop_after_the_maximum_age(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine = make_engine(retry_max_age="2h")
    smtp_server.fail_next(*["421 4.7.0 busy"] * 50)
    engine.handle_event(event("order.placed"))
    for _ in range(50):
        await engine.dispatch_due()
        clock.advance(timedelta(minutes=70))
    [message] = engine.customer_messages("C42")
    assert message.status == "failed"
    assert 2 <= message.attempts <= 5


async def test_server_down_is_transient(
    make_engine: Callable[..., Notifier], clock: FrozenClock
) -> None:
    from tests.smtpd import free_port

    engine = make_engine(smtp_port=free_port())
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    [message] = engine.customer_messages("C42")
    assert message.status == "retrying"
    assert "connect" in (message.last_error or "")


async def test_a_template_error_fails_one_message_and_the_rest_go_on(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.send_message(
        {
            "id": "adhoc-ok",
            "kind": "order_confirmation",
            "to": customer(),
            "context": {"order": order(), "data": {}},
        }
    )
    with pytest.raises(errors.InvalidInput) as caught:
        engine.send_message(
            {"id": "adhoc-bad", "kind": "order_confirmation", "to": customer(), "context": {}}
        )
    assert caught.value.field == "context.order.number"
    await engine.dispatch_due()
    assert len(smtp_server.received) == 1
    assert engine.get_message("adhoc-ok").status == "sent"
    with pytest.raises(errors.NotFound):
        engine.get_message("adhoc-bad")


async def test_adhoc_message_is_idempotent_and_can_be_scheduled(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    request = {
        "id": "adhoc-1",
        "kind": "shipping_notice",
        "to": customer("en"),
        "context": {
            "order": order(),
            "data": {"carrier": "DHL", "tracking_url": "https://dhl.example/t/1"},
        },
        "send_at": (START + timedelta(hours=1)).isoformat(),
    }
    assert engine.send_message(request).created
    assert not engine.send_message(request).created
    assert await engine.dispatch_due() == 0
    clock.advance(timedelta(hours=1))
    assert await engine.dispatch_due() == 1
    assert engine.get_message("adhoc-1").status == "sent"


def test_cancel_message(engine: Notifier) -> None:
    accepted = engine.handle_event(event("order.delivered"))
    message_id = accepted.body["messages"][0]["id"]
    assert engine.cancel_message(message_id).status == "cancelled"
    with pytest.raises(errors.Conflict):
        engine.cancel_message(message_id)
    with pytest.raises(errors.NotFound):
        engine.cancel_message("nope")


def test_order_event_without_order_writes_nothing(engine: Notifier) -> None:
    body = event("order.placed")
    del body["order"]
    with pytest.raises(errors.InvalidInput) as caught:
        engine.handle_event(body)
    assert caught.value.field == "order"
    with pytest.raises(errors.NotFound):
        engine.get_message("x")
    assert engine.customer_messages("C42") == []
    assert engine.status().depth == []


async def test_expired_lease_is_taken_over_and_recorded(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    from notifier.store import outbox

    engine.handle_event(event("order.placed"))
    # Arrangement: a dead worker holds the lease.
    with engine.database.transaction() as session:
        claimed = outbox.lease_due(
            session, owner="dead-worker", now=clock.now(), limit=10, lease=timedelta(minutes=5)
        )
    assert len(claimed) == 1
    assert await engine.dispatch_due() == 0  # leased to the dead worker
    clock.advance(timedelta(minutes=6))
    assert await engine.dispatch_due() == 1
    [message] = engine.customer_messages("C42")
    assert message.status == "sent" and message.attempts == 2
    assert len(smtp_server.received) == 1


async def test_order_mail_is_claimed_before_a_due_newsletter_backlog(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    from notifier.store import outbox

    engine = make_engine(batch_size=10)
    for number in range(30):
        engine.send_message(
            {
                "id": f"news-{number}",
                "kind": "newsletter",
                "to": customer(id=f"R{number}", email=f"r{number}@example.nl"),
                "context": {"newsletter": {"title": "Winter", "intro": "Nieuw", "items": []}},
            }
        )
    clock.advance(timedelta(minutes=5))
    engine.handle_event(event("order.placed"))
    # Bookkeeping: which message one claim takes first; arrival over parallel sends can't tell.
    with engine.database.transaction() as session:
        leased = outbox.lease_due(
            session, owner="w", now=clock.now(), limit=1, lease=timedelta(minutes=5)
        )
        [first] = outbox.claimed(session, engine.sealer, leased)
    assert first.kind == "order_confirmation"


async def test_the_development_inbox_gets_mail_8bit_as_a_relay_offering_it_would(
    make_engine: Callable[..., Notifier], tmp_path: Path
) -> None:
    """Capture mode speaks to its own aiosmtpd, which offers 8BITMIME: learnt, then used."""
    engine = make_engine(database_url=f"sqlite:///{tmp_path / 'n.db'}", smtp_host=None)

    async def sent(count: int) -> None:
        """Until ``count`` mails are sent: the started engine's express lane may send one
        before dispatch_due looks."""

        def done() -> bool:
            messages = engine.customer_messages("C42")
            return [m.status for m in messages].count(MessageStatus.SENT) == count

        await until(done)

    await engine.start()
    for number in (1, 2):  # the first is composed before any connection learnt the extension
        engine.handle_event(event("order.placed", order=order(id=f"O-{number}")))
        await engine.dispatch_due()
        await sent(number)
    await engine.stop()
    kept = sorted((tmp_path / ".notifier-inbox").glob("*.eml"))
    assert len(kept) == 2
    assert kept[1].read_bytes().count(b"Content-Transfer-Encoding: 8bit") == 2
