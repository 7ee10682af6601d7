"""Campaigns in several languages, to part of the subscribers, tried first, paused at will.

End to end through a real SQLite file or PostgreSQL and a real aiosmtpd
sink: what each subscriber's mail says is read back from what was received.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from notifier import errors
from notifier.service import Notifier
from notifier.store.campaigns import PAUSED_UNTIL
from notifier.store.models import Customer
from tests.asgi import api_client
from tests.campaigns import CONTENT, add_subscribers
from tests.smtpd import SmtpServer

ENGLISH: dict[str, Any] = {
    "title": "Ready for the winter roads",
    "intro": "The nights are getting colder. These parts see you through the winter.",
    "items": [
        {
            "title": "Winter wipers",
            "text": "Clear view in snow and sleet.",
            "price": "24.95",
            "currency": "EUR",
            "url": "https://www.winparts.example/p/wipers",
        }
    ],
}
PER_LOCALE = {"nl": CONTENT, "en": ENGLISH}
SUBJECTS = {"nl": "Wintersale bij Winparts", "en": "Winter sale at Winparts"}


def campaign(**changes: Any) -> dict[str, Any]:
    return {"id": "winter", "subjects": SUBJECTS, "content": PER_LOCALE} | changes


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def by_recipient(smtp_server: SmtpServer) -> dict[str, EmailMessage]:
    return {r.recipients[0]: r.message for r in smtp_server.received}


def tag(
    engine: Notifier, customer_id: str, tags: str | None = None, locale: str | None = None
) -> None:
    values: dict[str, Any] = {}
    if tags is not None:
        values["tags"] = tags
    if locale is not None:
        values["locale"] = locale
    # Arranges a state: tags and locale on a subscriber planted in bulk, without an event.
    with engine.database.transaction() as session:
        session.execute(update(Customer).where(Customer.id == customer_id).values(**values))


async def test_each_locale_gets_its_own_content_subject_title_and_language(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    add_subscribers(engine, 3)  # N0000000 nl, N0000001 en, N0000002 nl_BE
    out, created = engine.newsletters.create(campaign())
    assert created and out.audience_size == 3 and out.warnings == []
    engine.newsletters.advance()
    assert await engine.dispatch_due() == 3
    mails = by_recipient(smtp_server)
    expected = {
        "lezer0@example.nl": ("nl", SUBJECTS["nl"], CONTENT["title"]),
        "lezer1@example.nl": ("en", SUBJECTS["en"], ENGLISH["title"]),
        "lezer2@example.nl": ("nl", SUBJECTS["nl"], CONTENT["title"]),
    }
    for address, (language, subject, title) in expected.items():
        mail = mails[address]
        html = html_of(mail)
        assert str(mail["Subject"]) == subject
        assert str(mail["Content-Language"]).split("-")[0] == language
        assert re.search(rf'<html[^>]* lang="{language}(-BE)?"', html), address
        assert f"<title>{subject}</title>" in html
        assert title in text_of(mail) and title in html
    assert "De nachten worden kouder" not in text_of(mails["lezer1@example.nl"])
    assert "The nights are getting colder" in text_of(mails["lezer1@example.nl"])
    assert "De nachten worden kouder" in text_of(mails["lezer2@example.nl"])

    assert all(str(m["List-Id"]).startswith("Winparts Nieuwsbrief <") for m in mails.values())

    progress = engine.newsletters.get("winter").progress_by_locale
    assert {locale: p.sent for locale, p in progress.items()} == {"nl": 1, "en": 1, "nl_BE": 1}


async def test_the_one_object_form_still_sends_the_same_content_to_all(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    add_subscribers(engine, 2)
    engine.newsletters.create(campaign(content=CONTENT))
    engine.newsletters.advance()
    await engine.dispatch_due()
    mails = by_recipient(smtp_server)
    assert str(mails["lezer1@example.nl"]["Subject"]) == SUBJECTS["en"]
    assert CONTENT["title"] in text_of(mails["lezer1@example.nl"])


def test_a_locale_no_content_reaches_is_refused_unless_a_stand_in_is_named(
    engine: Notifier,
) -> None:
    add_subscribers(engine, 3)
    tag(engine, "N0000001", locale="de")
    with pytest.raises(errors.InvalidInput) as caught:
        engine.newsletters.create(campaign(content={"en": ENGLISH}, subjects={"en": "Sale"}))
    assert caught.value.field == "content" and "de" in str(caught.value)
    assert "nl" in str(caught.value)
    out, created = engine.newsletters.create(
        campaign(content={"en": ENGLISH}, subjects={"en": "Sale"}, fallback_locale="en")
    )
    assert created and out.audience_size == 3


async def test_a_stand_in_mail_speaks_the_stand_ins_language(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    add_subscribers(engine, 1)  # Dutch
    engine.newsletters.create(
        campaign(content={"en": ENGLISH}, subjects={"en": "Sale"}, fallback_locale="en")
    )
    engine.newsletters.advance()
    await engine.dispatch_due()
    [mail] = by_recipient(smtp_server).values()
    assert str(mail["Content-Language"]) == "en" and 'lang="en"' in html_of(mail)
    assert str(mail["Subject"]) == "Sale" and ENGLISH["title"] in text_of(mail)


async def test_audience_by_locale_and_tags(engine: Notifier, smtp_server: SmtpServer) -> None:
    add_subscribers(engine, 9)  # locales cycle nl, en, nl_BE
    tag(engine, "N0000000", "|vip|")
    tag(engine, "N0000002", "|vip|b2b|")
    tag(engine, "N0000003", "|b2b|")
    tag(engine, "N0000005", "|vip_x|")
    audience = {"locales": ["nl"], "tags_any": ["vip", "b2b"], "tags_none": ["b2b"]}
    out, _ = engine.newsletters.create(campaign(audience=audience))
    assert out.audience_size == 1 and out.audience == audience
    engine.newsletters.advance()
    await engine.dispatch_due()
    assert list(by_recipient(smtp_server)) == ["lezer0@example.nl"]

    out, _ = engine.newsletters.create(campaign(id="english", audience={"locales": ["en"]}))
    assert out.audience_size == 3
    out, _ = engine.newsletters.create(campaign(id="belgian", audience={"locales": ["nl-BE"]}))
    assert out.audience_size == 3
    with pytest.raises(errors.InvalidInput) as caught:
        engine.newsletters.create(campaign(id="nobody", audience={"tags_any": ["vlp"]}))
    assert caught.value.field == "audience"


@pytest.fixture
async def http(
    make_engine: Callable[..., Notifier],
) -> AsyncIterator[tuple[httpx.AsyncClient, Notifier]]:
    engine = make_engine()
    async with api_client(engine, authorized=True) as client:
        yield client, engine


def many_items(count: int) -> dict[str, Any]:
    content = copy.deepcopy(ENGLISH)
    item = content["items"][0] | {"text": "Clear view in snow and sleet. " * 12}
    content["items"] = [item | {"title": f"Part {n}"} for n in range(count)]
    return content


async def test_html_over_100_kb_is_refused_with_size_and_limit_and_warned_from_90(
    http: tuple[httpx.AsyncClient, Notifier],
) -> None:
    client, engine = http
    add_subscribers(engine, 2)
    answers = {}
    for count in (5, 17, 25):  # about 5 KB an item: some 36, 94 and 134 KB of HTML
        answers[count] = await client.post(
            "/v1/campaigns",
            json=campaign(id=f"size-{count}", content={"nl": CONTENT, "en": many_items(count)}),
        )
    too_big = answers[25]
    assert too_big.status_code == 422, too_big.text
    [(field, text)] = too_big.json()["fields"].items()
    assert field == "content.en" and re.search(r"is 1\d\d\.\d KB .*limit of 100 KB", text)
    assert answers[5].status_code == 202 and answers[5].json()["warnings"] == []
    near = answers[17]
    assert near.status_code == 202, near.text
    [warning] = near.json()["warnings"]
    assert re.search(r"en mail is 9\d\.\d KB of HTML, close to the limit of 100 KB", warning)


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "ftp://x.example/"]
)
async def test_links_other_than_http_https_mailto_are_refused_everywhere(
    http: tuple[httpx.AsyncClient, Notifier], link: str
) -> None:
    client, engine = http
    add_subscribers(engine, 1)
    content = copy.deepcopy(CONTENT)
    content["items"][1]["url"] = link
    answer = await client.post("/v1/campaigns", json=campaign(content=content))
    assert answer.status_code == 422
    assert "items.1.url" in answer.json()["message"] and "content" in answer.json()["fields"]

    message = {
        "id": "adhoc",
        "kind": "newsletter_confirm",
        "to": {"id": "C1", "email": "a@example.nl"},
        "context": {"extra": {"help_url": link}},
    }
    answer = await client.post("/v1/messages", json=message)
    assert answer.status_code == 422 and "extra.help_url" in answer.json()["message"]
    assert "context" in answer.json()["fields"]

    event = {
        "id": "ev",
        "type": "order.shipped",
        "customer": {"id": "C1", "email": "a@example.nl"},
        "order": {"id": "O1"},
        "data": {"carrier": "PostNL", "note": {"href": link}},
    }
    answer = await client.post("/v1/events", json=event)
    assert answer.status_code == 422 and "data.note.href" in answer.json()["fields"]


async def test_mailto_and_relative_free_text_are_fine(
    http: tuple[httpx.AsyncClient, Notifier],
) -> None:
    client, engine = http
    add_subscribers(engine, 1)
    content = copy.deepcopy(CONTENT)
    content["items"][1]["url"] = "mailto:verkoop@winparts.example"
    content["intro"] = "Let op: de prijzen gaan omhoog."
    answer = await client.post("/v1/campaigns", json=campaign(content=content))
    assert answer.status_code == 202, answer.text


async def test_draft_is_tried_then_scheduled_then_paused_and_resumed(
    http: tuple[httpx.AsyncClient, Notifier], smtp_server: SmtpServer
) -> None:
    client, engine = http
    add_subscribers(engine, 4)
    created = await client.post("/v1/campaigns", json=campaign(status="draft"))
    assert created.status_code == 202 and created.json()["status"] == "draft"
    assert engine.newsletters.advance() == 0

    tried = await client.post(
        "/v1/campaigns/winter/test", json={"to": ["collega@winparts.example"], "locale": "en"}
    )
    assert tried.status_code == 200, tried.text
    [mail] = smtp_server.received
    assert str(mail.message["Subject"]) == f"[TEST] {SUBJECTS['en']}"
    assert ENGLISH["title"] in text_of(mail.message) and mail.message["X-Notifier-Test"] == "yes"
    assert engine.newsletters.get("winter").progress.targeted == 0

    scheduled = await client.post("/v1/campaigns/winter/schedule")
    assert scheduled.json()["status"] == "scheduled"
    assert engine.newsletters.advance() == 4
    paused = await client.post("/v1/campaigns/winter/pause")
    assert paused.json()["status"] == "paused"
    assert await engine.dispatch_due() == 0
    waiting = {
        message.send_after
        for number in range(4)
        for message in engine.customer_messages(f"N{number:07d}")
        if message.kind == "newsletter"  # the one campaign's mail
    }
    assert waiting == {PAUSED_UNTIL}
    assert (await client.post("/v1/campaigns/winter/schedule")).status_code == 409

    resumed = await client.post("/v1/campaigns/winter/resume")
    assert resumed.json()["status"] in ("running", "done")
    assert await engine.dispatch_due() == 4
    final = (await client.get("/v1/campaigns/winter")).json()
    assert final["progress"]["sent"] == 4 and final["status"] == "done"
    assert final["progress_by_locale"]["en"]["sent"] == 1

    cancelled = await client.delete("/v1/campaigns/winter")
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.post("/v1/campaigns/winter/pause")).status_code == 409
    assert (
        await client.post("/v1/campaigns/nope/test", json={"to": ["a@b.example"]})
    ).status_code == 404


async def test_pausing_mid_fan_out_stops_it_until_resumed(engine: Notifier) -> None:
    add_subscribers(engine, 30)
    engine.newsletters.create(campaign())
    engine.newsletters.pause("winter")
    assert engine.newsletters.advance(page_size=10) == 0
    engine.newsletters.resume("winter")
    assert engine.newsletters.advance(page_size=10) == 30
