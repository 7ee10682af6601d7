"""The customer's say over HTTP: one-click unsubscribe, link pages, consent, suppressions.

Every test drives the real app over ``httpx.ASGITransport`` against a real
engine on SQLite and PostgreSQL, with mail going through a real SMTP server.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from notifier.clock import FrozenClock
from notifier.mail import tokens
from notifier.service import Notifier
from notifier.web import pages
from notifier.web.app import create_app
from tests import ROOT
from tests.conftest import customer, event
from tests.links import FORM, ONE_CLICK_BODY, generation, preference_link
from tests.smtpd import SmtpServer

AUTH = {"Authorization": "Bearer test-token"}
ALL_ON = {"order_updates": True, "reviews": True, "newsletter": False, "service": True}
NEWSLETTER_SAMPLE = ROOT / "templates" / "samples" / "newsletter.json"


# -- helpers -----------------------------------------------------------------------------


@dataclass
class Form:
    """A form as a browser would submit it: its action, hidden and checkbox fields, its buttons."""

    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    checkboxes: dict[str, bool] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)

    def data(self, button: str | None = None, **checked: bool) -> dict[str, str]:
        """The body a browser posts when ``button`` (a button value) is pressed."""
        body = dict(self.hidden)
        for name, on in (self.checkboxes | checked).items():
            if on:
                body[name] = "on"
        if button is not None:
            [(name, value)] = [b for b in self.buttons if b[1] == button]
            body[name] = value
        return body


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[str] = []
        self.resources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.resources.extend(
            attributes[name] for name in ("src", "href", "action") if name in attributes
        )
        if tag == "a" and "href" in attributes:
            self.links.append(attributes["href"])
        if tag == "form":
            self.forms.append(Form(attributes.get("action", "")))
            return
        if not self.forms or "disabled" in attributes:
            return
        form = self.forms[-1]
        if tag == "input" and attributes.get("type") == "hidden":
            form.hidden[attributes["name"]] = attributes.get("value", "")
        elif tag == "input" and attributes.get("type") == "checkbox" and "name" in attributes:
            form.checkboxes[attributes["name"]] = "checked" in attributes
        elif tag == "button" and "name" in attributes:
            form.buttons.append((attributes["name"], attributes.get("value", "")))


def parse(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser


def only_form(html: str) -> Form:
    [form] = parse(html).forms
    return form


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def path_of(url: str) -> str:
    return urlsplit(url).path


def token_of(url: str) -> str:
    return path_of(url).rsplit("/", 1)[1]


def list_unsubscribe_url(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    match = re.fullmatch(r"<(https://notifier\.test/unsubscribe/[^>]+)>", header)
    assert match, header
    return match.group(1)


def footer_link(message: EmailMessage, page: str) -> str:
    [link] = [href for href in parse(html_of(message)).links if f"/{page}/" in href]
    return link


def confirm_link(message: EmailMessage) -> str:
    [link] = [href for href in parse(html_of(message)).links if "/confirm/" in href]
    return link


@dataclass(frozen=True)
class Snapshot:
    """Everything a page could change for customer C42."""

    states: dict[str, bool]
    changes: list[tuple[str, bool, str]]
    consents: int


def snapshot(engine: Notifier, customer_id: str = "C42") -> Snapshot:
    """Read through the privacy export: what the customer is shown is what is held."""
    exported = engine.privacy.export(customer_id)
    return Snapshot(
        engine.choices.states(customer_id),
        changes_of(exported),
        len(exported["consents"]),
    )


def changes_of(exported: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """An export's preference changes, oldest first, as (category, enabled, source)."""
    return [(c["category"], c["enabled"], c["source"]) for c in exported["preference_changes"]]


def statuses(engine: Notifier, customer_id: str = "C42") -> dict[str, tuple[str, str | None]]:
    return {m.kind: (m.status, m.reason) for m in engine.customer_messages(customer_id)}


async def deliver(
    engine: Notifier, smtp_server: SmtpServer, type: str, locale: str = "nl", **extra: Any
) -> EmailMessage:
    """Send an event's immediate mail through the real SMTP server and return what arrived."""
    before = len(smtp_server.received)
    engine.handle_event(event(type, locale=locale, **extra))
    await engine.dispatch_due()
    received = smtp_server.received
    assert len(received) == before + 1, "the mail did not arrive"
    return received[-1].message


async def deliver_review(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock, locale: str = "nl"
) -> EmailMessage:
    """An order.delivered event and three days later the review_products mail."""
    engine.handle_event(event("order.delivered", locale=locale))
    clock.advance(timedelta(days=3))
    await engine.dispatch_due()
    message = smtp_server.received[-1].message
    assert statuses(engine)["review_products"][0] == "sent"
    return message


async def one_click(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """The POST a mailbox provider sends for RFC 8058 one-click: that body, no cookies, no login."""
    return await client.post(url, content=ONE_CLICK_BODY, headers={"Content-Type": FORM})


@pytest.fixture
async def client(engine: Notifier) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, ["test-token"], run_worker=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://notifier.test") as http:
        yield http


# -- one-click unsubscribe (RFC 8058) ----------------------------------------------------


async def test_one_click_post_to_the_list_unsubscribe_url_turns_the_category_off(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    message = await deliver(engine, smtp_server, "order.placed")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = list_unsubscribe_url(message)

    response = await one_click(client, url)

    assert response.status_code == 200
    assert not response.is_redirect and "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert not client.cookies
    # The change is in place when the answer arrives, not some time after.
    assert engine.choices.states("C42") == ALL_ON | {"order_updates": False}
    assert snapshot(engine).changes == [("order_updates", False, "one_click")]


async def test_one_click_is_idempotent(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    url = list_unsubscribe_url(await deliver(engine, smtp_server, "order.placed"))
    first = await one_click(client, url)
    after_first = snapshot(engine)

    second = await one_click(client, url)

    assert (first.status_code, second.status_code) == (200, 200)
    assert "set-cookie" not in second.headers
    assert snapshot(engine) == after_first


@pytest.mark.parametrize(
    ("first_event", "category", "later_kind"),
    [
        pytest.param("order.placed", "order_updates", "shipping_notice", id="order-updates"),
        pytest.param("order.delivered", "reviews", "review_service", id="reviews"),
    ],
)
async def test_after_one_click_the_next_mail_of_that_category_is_suppressed_with_its_reason(
    engine: Notifier,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    client: httpx.AsyncClient,
    first_event: str,
    category: str,
    later_kind: str,
) -> None:
    if first_event == "order.delivered":
        message = await deliver_review(engine, smtp_server, clock)
    else:
        message = await deliver(engine, smtp_server, first_event)
    response = await one_click(client, list_unsubscribe_url(message))
    assert response.status_code == 200

    if later_kind == "shipping_notice":
        engine.handle_event(event("order.shipped"))
    else:
        clock.advance(timedelta(days=7))
    await engine.dispatch_due()

    assert len(smtp_server.received) == 1
    [later] = [m for m in engine.customer_messages("C42") if m.kind == later_kind]
    reason = f"unsubscribed from {category}"
    stored = engine.get_message(later.id)
    assert (stored.status, stored.reason) == ("suppressed", reason)
    history = (await client.get("/v1/customers/C42/messages", headers=AUTH)).json()
    [listed] = [m for m in history if m["id"] == later.id]
    assert (listed["status"], listed["reason"]) == ("suppressed", reason)


async def test_one_click_sent_as_multipart_form_data_also_unsubscribes(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    url = list_unsubscribe_url(await deliver(engine, smtp_server, "order.placed"))

    response = await client.post(url, files={"List-Unsubscribe": (None, "One-Click")})

    assert response.status_code == 200
    assert engine.choices.states("C42")["order_updates"] is False


async def test_one_click_on_an_essential_mail_link_is_refused_and_changes_nothing(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    message = await deliver(engine, smtp_server, "order.verification_requested")
    assert message["List-Unsubscribe"] is None
    token = token_of(footer_link(message, "preferences"))
    before = snapshot(engine)

    response = await one_click(client, f"/unsubscribe/{token}")

    assert response.status_code == 409
    assert response.headers["content-type"].startswith("text/html")
    assert snapshot(engine) == before


async def test_one_click_unsubscribes_from_one_mailbox_provider_are_all_honoured(
    engine: Notifier, client: httpx.AsyncClient
) -> None:
    count = 130
    for number in range(count):
        engine.handle_event(
            event("order.placed", customer=customer(id=f"K{number}", email=f"k{number}@example.nl"))
        )

    answers = []
    for number in range(count):
        token = preference_link(engine, "order_updates", customer_id=f"K{number}")
        answers.append((await one_click(client, f"/unsubscribe/{token}")).status_code)

    assert answers == [200] * count
    assert engine.choices.states(f"K{count - 1}")["order_updates"] is False


# -- the pages: GET shows, never changes ------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "lang", "texts"),
    [
        pytest.param(
            "nl", "nl", ("Je e-mailvoorkeuren", "Berichten over je bestelling", "Afmelden"), id="nl"
        ),
        pytest.param(
            "en_GB", "en", ("Your email preferences", "Order updates", "Unsubscribe"), id="en"
        ),
    ],
)
async def test_link_pages_show_the_choices_in_the_mails_language_and_change_nothing(
    engine: Notifier,
    smtp_server: SmtpServer,
    client: httpx.AsyncClient,
    locale: str,
    lang: str,
    texts: tuple[str, str, str],
) -> None:
    message = await deliver(engine, smtp_server, "order.placed", locale=locale)
    before = snapshot(engine)
    heading, label, button = texts

    for page in ("unsubscribe", "preferences"):
        for _ in range(2):  # a mail scanner prefetching the link, then the customer
            response = await client.get(footer_link(message, page))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            html = response.text
            assert f'<html lang="{lang}">' in html
            assert label in html
            assert (button if page == "unsubscribe" else heading) in html
            form = only_form(html)
            assert form.action == path_of(footer_link(message, page))
            assert form.hidden["csrf"]

    assert snapshot(engine) == before


async def test_unsubscribe_page_names_the_category_of_the_mail(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock, client: httpx.AsyncClient
) -> None:
    message = await deliver_review(engine, smtp_server, clock)

    html = (await client.get(footer_link(message, "unsubscribe"))).text

    # Issue 22: the category lower-case mid-sentence (was "Afmelden voor Verzoeken …").
    assert "Afmelden voor verzoeken om een review?" in html


# -- the forms: CSRF, confirmation, undo -------------------------------------------------


@pytest.mark.parametrize("page", ["unsubscribe", "preferences", "confirm"])
@pytest.mark.parametrize("csrf", ["missing", "wrong", "another-links"])
async def test_a_form_post_without_its_own_csrf_field_is_refused_and_changes_nothing(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient, page: str, csrf: str
) -> None:
    if page == "confirm":
        url = confirm_link(await deliver(engine, smtp_server, "newsletter.subscribed"))
        other = engine.confirm_tokens.issue(
            tokens.Claims("C42", "newsletter", "en", generation(engine))
        )
    else:
        url = footer_link(await deliver(engine, smtp_server, "order.placed"), page)
        other = preference_link(engine, "reviews")
    form = only_form((await client.get(url)).text)
    body = form.data(button="all_off" if page == "preferences" else None)
    if csrf == "missing":
        del body["csrf"]
    elif csrf == "wrong":
        body["csrf"] = body["csrf"][:-4] + "AAAA"
    else:
        body["csrf"] = only_form((await client.get(f"/{page}/{other}")).text).hidden["csrf"]
    before = snapshot(engine)

    response = await client.post(path_of(url), data=body)

    assert response.status_code == 403
    assert "Dit formulier is verlopen" in response.text
    assert snapshot(engine) == before


async def test_unsubscribe_form_confirms_and_its_undo_restores_the_previous_state(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock, client: httpx.AsyncClient
) -> None:
    message = await deliver_review(engine, smtp_server, clock)
    url = footer_link(message, "unsubscribe")
    form = only_form((await client.get(url)).text)

    saved = await client.post(form.action, data=form.data())

    assert saved.status_code == 200
    assert "Je bent afgemeld" in saved.text
    assert engine.choices.states("C42") == ALL_ON | {"reviews": False}
    undo = only_form(saved.text)
    assert undo.action == f"/preferences/{token_of(url)}"

    undone = await client.post(undo.action, data=undo.data(button="undo"))

    assert undone.status_code == 200
    assert "Ongedaan gemaakt" in undone.text
    assert engine.choices.states("C42") == ALL_ON
    assert parse(undone.text).forms == [], "an undo is not undone again"
    # Issue 22: not a dead end: the way back to the preferences.
    assert f'href="/preferences/{token_of(url)}"' in undone.text
    assert f'href="/preferences/{token_of(url)}"' in saved.text
    assert [c for c in snapshot(engine).changes if c[0] == "reviews"] == [
        ("reviews", False, "unsubscribe_page"),
        ("reviews", True, "preferences_page"),
    ]


async def test_preferences_form_saves_the_ticked_choices_and_undo_brings_back_the_old_ones(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    message = await deliver(engine, smtp_server, "order.placed", locale="en")
    form = only_form((await client.get(footer_link(message, "preferences"))).text)
    assert form.checkboxes == {"order_updates": True, "reviews": True, "newsletter": False}

    saved = await client.post(form.action, data=form.data(button="save", reviews=False))

    assert saved.status_code == 200
    assert "Your choices are saved" in saved.text
    assert engine.choices.states("C42") == ALL_ON | {"reviews": False}
    undo = only_form(saved.text)
    await client.post(undo.action, data=undo.data(button="undo"))
    assert engine.choices.states("C42") == ALL_ON


async def test_unsubscribe_from_everything_turns_off_every_optional_category_but_not_service(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    message = await deliver(engine, smtp_server, "order.placed")
    engine.choices.update("C42", {"newsletter": True}, source="account")
    form = only_form((await client.get(footer_link(message, "preferences"))).text)

    saved = await client.post(form.action, data=form.data(button="all_off"))

    assert saved.status_code == 200
    assert "Je bent afgemeld voor alles wat je kunt uitzetten" in saved.text
    assert engine.choices.states("C42") == {
        "order_updates": False,
        "reviews": False,
        "newsletter": False,
        "service": True,
    }
    await deliver(engine, smtp_server, "order.verification_requested")
    assert statuses(engine)["verification_question"] == ("sent", None)

    undo = only_form(saved.text)
    await client.post(undo.action, data=undo.data(button="undo"))
    assert engine.choices.states("C42") == ALL_ON | {"newsletter": True}


# -- bad links ----------------------------------------------------------------------------


def _bad_token(engine: Notifier, good: str, badness: str) -> str:
    if badness == "one-character-changed":
        middle = len(good) // 2
        while not good[middle].isalnum():
            middle += 1
        replacement = "A" if good[middle] != "A" else "B"
        return good[:middle] + replacement + good[middle + 1 :]
    if badness == "last-character-changed-in-unused-bits":
        # The last base64 character of the signature carries two unused bits; a lenient
        # decoder reads the altered token as the original.
        alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
        return good[:-1] + alphabet[alphabet.index(good[-1]) ^ 1]
    if badness == "truncated":
        return good[: len(good) - 6]
    if badness == "junk-appended":
        return good + "x7Q"
    if badness == "other-secret-key":
        return tokens.Signer(["other"], tokens.PREFERENCES).issue(
            tokens.Claims("C42", "reviews", "nl", generation(engine))
        )
    if badness == "confirm-token":
        return engine.confirm_tokens.issue(
            tokens.Claims("C42", "newsletter", "nl", generation(engine))
        )
    if badness == "unknown-customer":
        return preference_link(engine, "reviews", customer_id="C999")
    if badness == "not-a-token":
        return "hello"
    assert badness == "very-long", badness
    return "A" * 8000


BADNESS = [
    "one-character-changed",
    "last-character-changed-in-unused-bits",
    "truncated",
    "junk-appended",
    "other-secret-key",
    "confirm-token",
    "unknown-customer",
    "not-a-token",
    "very-long",
]


@pytest.mark.parametrize("badness", BADNESS)
async def test_a_bad_link_gets_a_friendly_400_page_and_never_a_change(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient, badness: str
) -> None:
    message = await deliver(engine, smtp_server, "order.placed")
    bad = _bad_token(engine, token_of(list_unsubscribe_url(message)), badness)
    # A CSRF field made for the bad token itself, so the token check is what refuses the form.
    csrf = pages.Csrf(engine.secret_key).issue(bad)
    before = snapshot(engine)

    answers = [
        await client.get(f"/unsubscribe/{bad}"),
        await client.get(f"/preferences/{bad}"),
        await one_click(client, f"/unsubscribe/{bad}"),
        await client.post(f"/unsubscribe/{bad}", data={"csrf": csrf}),
        await client.post(f"/preferences/{bad}", data={"csrf": csrf, "action": "all_off"}),
    ]

    for response in answers:
        assert response.status_code == 400, (response.request.method, response.request.url.path)
        assert response.headers["content-type"].startswith("text/html")
        assert "Deze link werkt niet (meer)" in response.text
        assert "Er is niets veranderd" in response.text
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    "badness", ["preferences-token", "unknown-customer", "one-character-changed"]
)
async def test_a_bad_confirm_link_gets_a_friendly_400_page_and_subscribes_no_one(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient, badness: str
) -> None:
    message = await deliver(engine, smtp_server, "newsletter.subscribed")
    good = token_of(confirm_link(message))
    if badness == "preferences-token":
        bad = preference_link(engine, "newsletter")
    elif badness == "unknown-customer":
        bad = engine.confirm_tokens.issue(tokens.Claims("C999", "newsletter", "nl"))
    else:
        bad = _bad_token(engine, good, badness)
    before = snapshot(engine)

    shown = await client.get(f"/confirm/{bad}")
    posted = await client.post(
        f"/confirm/{bad}", data={"csrf": pages.Csrf(engine.secret_key).issue(bad)}
    )

    assert (shown.status_code, posted.status_code) == (400, 400)
    assert "Deze link werkt niet (meer)" in posted.text
    assert snapshot(engine) == before


# -- security headers and resources ---------------------------------------------------------


def assert_strict_page(response: httpx.Response, shop_url: str) -> None:
    """The security headers every page needs, and a page that loads only our own resources."""
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    assert response.headers["content-type"].startswith("text/html"), where
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy, where
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, where
    assert response.headers["referrer-policy"] == "no-referrer", where
    assert response.headers["x-frame-options"] == "DENY", where
    html = response.text
    for resource in parse(html).resources:
        assert resource.startswith(("/", "data:", shop_url)), (where, resource)
    # Inline code or style would be blocked by this policy and leave a broken page.
    assert "<script" not in html and "<style" not in html and " style=" not in html, where


async def test_link_pages_send_strict_security_headers_and_load_nothing_from_elsewhere(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    order_mail = await deliver(engine, smtp_server, "order.placed")
    confirm_mail = await deliver(engine, smtp_server, "newsletter.subscribed")
    confirm_page = await client.get(confirm_link(confirm_mail))
    form = only_form(confirm_page.text)
    responses = [
        await client.get(footer_link(order_mail, "unsubscribe")),
        await client.get(footer_link(order_mail, "preferences")),
        confirm_page,
        await client.post(form.action, data=form.data()),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    for response in responses:
        assert_strict_page(response, engine.settings.shop_url)


async def test_confirmation_and_problem_pages_send_strict_security_headers_too(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    unsubscribe = footer_link(await deliver(engine, smtp_server, "order.placed"), "unsubscribe")
    form = only_form((await client.get(unsubscribe)).text)
    responses = [
        await client.post(form.action, data=form.data()),
        await client.post(form.action, data={}),
        await client.get("/unsubscribe/nonsense"),
    ]

    assert [r.status_code for r in responses] == [200, 403, 400]
    for response in responses:
        assert_strict_page(response, engine.settings.shop_url)


# -- newsletter double opt-in ------------------------------------------------------------


def _campaign(campaign_id: str) -> dict[str, Any]:
    sample = json.loads(NEWSLETTER_SAMPLE.read_text(encoding="utf-8"))
    return {
        "id": campaign_id,
        "subjects": {"nl": "Winterklaar de weg op", "en": "Ready for winter"},
        "content": sample["newsletter"],
    }


def _newsletters_received(smtp_server: SmtpServer) -> list[EmailMessage]:
    return [
        r.message for r in smtp_server.received if "newsletter" in str(r.message["List-Id"] or "")
    ]


async def test_newsletter_needs_double_opt_in_and_records_the_consent(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    confirm_mail = await deliver(engine, smtp_server, "newsletter.subscribed")
    assert statuses(engine)["newsletter_confirm"] == ("sent", None)
    confirm_url = confirm_link(confirm_mail)

    engine.newsletters.create(_campaign("winter-1"))
    engine.newsletters.advance()
    await engine.dispatch_due()
    assert _newsletters_received(smtp_server) == []
    assert "newsletter" not in statuses(engine)

    before = snapshot(engine)
    page = await client.get(confirm_url)
    assert page.status_code == 200
    assert "Ja, stuur mij de nieuwsbrief" in page.text
    assert snapshot(engine) == before
    form = only_form(page.text)

    confirmed = await client.post(form.action, data=form.data())

    assert confirmed.status_code == 200
    assert "Je bent aangemeld voor onze nieuwsbrief" in confirmed.text
    assert engine.choices.states("C42")["newsletter"] is True
    [consent] = engine.privacy.export("C42")["consents"]
    assert consent["category"] == "newsletter"
    assert consent["source"] == "confirm_link"
    assert consent["text_version"] == engine.settings.consent_text_version
    assert consent["ip"] == "127.0.0.1"

    engine.newsletters.create(_campaign("winter-2"))
    engine.newsletters.advance()
    await engine.dispatch_due()
    engine.newsletters.advance()
    await engine.dispatch_due()

    [newsletter] = _newsletters_received(smtp_server)
    assert newsletter["To"] == "Jan de Vries <jan@example.nl>"
    assert str(newsletter["Subject"]) == "Winterklaar de weg op"
    assert [m.status for m in engine.customer_messages("C42") if m.kind == "newsletter"] == ["sent"]


# -- the account API ---------------------------------------------------------------------


async def test_account_api_reads_preferences_with_service_always_on(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    await deliver(engine, smtp_server, "order.placed")

    response = await client.get("/v1/customers/C42/preferences", headers=AUTH)

    assert response.status_code == 200
    assert response.json() == ALL_ON
    assert (await client.get("/v1/customers/C42/preferences")).status_code == 401
    unknown = await client.get("/v1/customers/C999/preferences", headers=AUTH)
    assert unknown.status_code == 404


async def test_account_api_sets_choices_and_logs_every_change(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    await deliver(engine, smtp_server, "order.placed")

    response = await client.put(
        "/v1/customers/C42/preferences",
        headers=AUTH,
        json={"reviews": False, "order_updates": False},
    )

    assert response.status_code == 200
    assert response.json() == ALL_ON | {"reviews": False, "order_updates": False}
    assert sorted(snapshot(engine).changes) == [
        ("order_updates", False, "account"),
        ("reviews", False, "account"),
    ]
    again = await client.put("/v1/customers/C42/preferences", headers=AUTH, json={"reviews": False})
    assert again.status_code == 200 and len(snapshot(engine).changes) == 2


async def test_account_api_refuses_to_turn_off_service_mail_naming_the_field(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    await deliver(engine, smtp_server, "order.placed")
    before = snapshot(engine)

    response = await client.put(
        "/v1/customers/C42/preferences", headers=AUTH, json={"reviews": False, "service": False}
    )

    assert response.status_code == 422
    assert "service" in response.json()["fields"]
    assert snapshot(engine) == before


async def test_account_api_answers_404_for_an_unknown_customer(
    engine: Notifier, client: httpx.AsyncClient
) -> None:
    response = await client.put(
        "/v1/customers/C999/preferences", headers=AUTH, json={"reviews": False}
    )

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")


async def test_newsletter_turned_on_in_the_account_records_consent_from_the_account(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    await deliver(engine, smtp_server, "order.placed")

    response = await client.put(
        "/v1/customers/C42/preferences",
        headers=AUTH,
        json={"newsletter": True, "ip": "203.0.113.7", "consent_text_version": "nb-2026-12"},
    )

    assert response.status_code == 200
    assert response.json()["newsletter"] is True
    exported = engine.privacy.export("C42")
    [consent] = exported["consents"]
    assert (consent["source"], consent["category"], consent["text_version"]) == (
        "account",
        "newsletter",
        "nb-2026-12",
    )
    assert consent["ip"] == "203.0.113.7"
    assert changes_of(exported) == [("newsletter", True, "account")]


# -- suppressions -------------------------------------------------------------------------


async def _suppress(client: httpx.AsyncClient, reason: str, email: str = "jan@example.nl") -> None:
    response = await client.post(
        "/v1/suppressions", headers=AUTH, json={"email": email, "reason": reason}
    )
    assert response.status_code == 200, response.text


async def test_a_hard_bounce_suppresses_every_mail_even_essential_service_mail(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    await _suppress(client, "hard_bounce", email="Jan@Example.NL")

    engine.handle_event(event("order.placed"))
    engine.handle_event(event("order.verification_requested"))
    await engine.dispatch_due()

    assert smtp_server.received == []
    reason = "address suppressed: hard bounce"
    assert statuses(engine) == {
        "order_confirmation": ("suppressed", reason),
        "verification_question": ("suppressed", reason),
    }


async def test_a_complaint_turns_off_every_optional_category_but_service_mail_still_arrives(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    await deliver(engine, smtp_server, "order.placed")

    await _suppress(client, "complaint")

    assert engine.choices.states("C42") == {
        "order_updates": False,
        "reviews": False,
        "newsletter": False,
        "service": True,
    }
    engine.handle_event(event("order.shipped"))
    await engine.dispatch_due()
    assert statuses(engine)["shipping_notice"][0] == "suppressed"
    await deliver(engine, smtp_server, "order.verification_requested")
    assert statuses(engine)["verification_question"] == ("sent", None)


async def test_a_manual_suppression_stops_optional_mail_but_not_service_mail(
    engine: Notifier, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    await _suppress(client, "manual")

    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    await deliver(engine, smtp_server, "order.verification_requested")

    assert statuses(engine) == {
        "order_confirmation": ("suppressed", "address suppressed: manual"),
        "verification_question": ("sent", None),
    }
    assert len(smtp_server.received) == 1


async def test_an_smtp_no_such_user_reply_suppresses_the_address_automatically(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    smtp_server.fail_next("550 5.1.1 no such user")
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    assert statuses(engine)["order_confirmation"][0] == "failed"

    engine.handle_event(event("order.shipped"))
    await engine.dispatch_due()

    assert smtp_server.received == []
    assert statuses(engine)["shipping_notice"] == ("suppressed", "address suppressed: hard bounce")


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        pytest.param({"email": "not an address", "reason": "hard_bounce"}, "email", id="bad-email"),
        pytest.param({"email": "jan@example.nl", "reason": "bored"}, "reason", id="unknown-reason"),
        pytest.param({"reason": "manual"}, "email", id="no-email"),
    ],
)
async def test_a_bad_suppression_is_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, str], field_name: str
) -> None:
    response = await client.post("/v1/suppressions", headers=AUTH, json=body)

    assert response.status_code == 422
    assert field_name in response.json()["fields"]
