"""The pages behind mail links in a real browser: Debian's chromium driven by Playwright.

The app runs under uvicorn in a background thread and only serves pages; the
engine's dispatcher is driven from the test's event loop, and time moves by
advancing the frozen clock.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    async_playwright,
    expect,
)

from notifier.clock import FrozenClock
from notifier.service import Notifier
from notifier.web.app import create_app
from tests import served
from tests.browser import CHROMIUM, CHROMIUM_ARGS, LAYOUT_PROBLEMS
from tests.conftest import event
from tests.links import FORM, ONE_CLICK_BODY, preference_link
from tests.smtpd import SmtpServer, free_port

BRAND_BLUE = "rgb(11, 61, 145)"
"""The buttons' colour in pages.css: proof that the stylesheet loaded under the CSP."""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no chromium at {CHROMIUM} (apt install chromium)"
    ),
]


@dataclass(frozen=True)
class Language:
    """What a customer of one language reads on the pages."""

    locale: str
    lang: str
    preferences_heading: str
    unsubscribe_heading: str
    unsubscribe_button: str
    unsubscribed: str
    undo_button: str
    undone: str


DUTCH = Language(
    locale="nl",
    lang="nl",
    preferences_heading="Je e-mailvoorkeuren",
    unsubscribe_heading="Afmelden voor verzoeken om een review?",
    unsubscribe_button="Afmelden",
    unsubscribed="Je bent afgemeld",
    undo_button="Ongedaan maken",
    undone="Ongedaan gemaakt: je vorige keuzes staan weer aan",
)
ENGLISH = Language(
    locale="en",
    lang="en",
    preferences_heading="Your email preferences",
    unsubscribe_heading="Unsubscribe from review requests?",
    unsubscribe_button="Unsubscribe",
    unsubscribed="You are unsubscribed",
    undo_button="Undo",
    undone="Undone: your previous choices are back",
)
LANGUAGES = [pytest.param(DUTCH, id="nl"), pytest.param(ENGLISH, id="en")]


# -- fixtures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    engine: Notifier
    url: str


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: a page looks the same on either database, and tests/web/test_pages.py
    follows the same links on both; the browser's time goes to the pages themselves."""
    return f"sqlite:///{tmp_path / 'notifier.db'}"


@pytest.fixture
def site(make_engine: Callable[..., Notifier]) -> Iterator[Site]:
    """The real app under uvicorn on a free local port, with the engine's links pointing at it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine = make_engine(base_url=url)
    with served.serving(create_app(engine, ["test-token"], run_worker=False), port):
        yield Site(engine, url)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Tab:
    """A browser page that records console errors and every URL it requests."""

    page: Page
    errors: list[str]
    requests: list[str]


async def open_tab(browser: Browser, width: int = 1280, height: int = 900) -> Tab:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    tab = Tab(page, [], [])

    def on_console(message: ConsoleMessage) -> None:
        # Chromium asks every site for /favicon.ico on its own; the pages link no icon.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            tab.errors.append(f"{message.text} @ {message.location.get('url')}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            tab.errors.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("request", lambda request: tab.requests.append(request.url))
    page.on("response", on_response)
    return tab


# -- helpers -----------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def footer_links(message: EmailMessage) -> dict[str, str]:
    """The preferences and unsubscribe links of a mail's HTML part, by page name."""
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    parser = _Links()
    parser.feed(str(part.get_content()))
    found: dict[str, str] = {}
    for href in parser.hrefs:
        for page in ("preferences", "unsubscribe"):
            if f"/{page}/" in href:
                assert found.setdefault(page, href) == href, f"two different {page} links"
    assert set(found) == {"preferences", "unsubscribe"}, parser.hrefs
    return found


async def review_mail(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock, locale: str
) -> EmailMessage:
    """order.delivered, three days on, dispatch: the review_products mail as it arrived."""
    engine.handle_event(event("order.delivered", locale=locale))
    clock.advance(timedelta(days=3))
    await engine.dispatch_due()
    [received] = smtp_server.received
    return received.message


def status_of(engine: Notifier, kind: str) -> tuple[str, str | None]:
    [message] = [m for m in engine.customer_messages("C42") if m.kind == kind]
    return message.status, message.reason


async def assert_fits_a_phone(page: Page) -> None:
    overflow = await page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert overflow[0] <= overflow[1], f"horizontal overflow: scrollWidth, innerWidth = {overflow}"


# -- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
async def test_customer_unsubscribes_from_reviews_in_the_browser_and_undoes_it(
    site: Site,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    browser: Browser,
    language: Language,
) -> None:
    engine = site.engine
    links = footer_links(await review_mail(engine, smtp_server, clock, language.locale))
    assert all(link.startswith(f"{site.url}/") for link in links.values())
    tab = await open_tab(browser)
    page = tab.page

    response = await page.goto(links["unsubscribe"])
    assert response is not None and response.status == 200
    assert await page.get_attribute("html", "lang") == language.lang
    await expect(page.get_by_role("heading", level=1)).to_have_text(language.unsubscribe_heading)
    assert engine.choices.states("C42")["reviews"] is True, "opening the link changed something"

    await page.get_by_role("button", name=language.unsubscribe_button, exact=True).click()

    await expect(page.get_by_role("status")).to_have_text(language.unsubscribed)
    assert engine.choices.states("C42")["reviews"] is False
    clock.advance(timedelta(days=7))
    await engine.dispatch_due()
    assert status_of(engine, "review_service") == ("suppressed", "unsubscribed from reviews")
    assert len(smtp_server.received) == 1, "the second review mail reached the server"

    await page.get_by_role("button", name=language.undo_button, exact=True).click()

    await expect(page.get_by_role("status")).to_have_text(language.undone)
    assert engine.choices.states("C42")["reviews"] is True
    assert tab.errors == []
    assert all(url.startswith(f"{site.url}/") for url in tab.requests), tab.requests


@pytest.mark.parametrize("language", LANGUAGES)
async def test_preferences_page_fits_a_375px_phone_screen(
    site: Site,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    browser: Browser,
    language: Language,
    tmp_path: Path,
) -> None:
    links = footer_links(await review_mail(site.engine, smtp_server, clock, language.locale))
    tab = await open_tab(browser, width=375, height=812)
    page = tab.page

    response = await page.goto(links["preferences"])

    assert response is not None and response.status == 200
    assert await page.get_attribute("html", "lang") == language.lang
    await expect(page.get_by_role("heading", level=1)).to_have_text(language.preferences_heading)
    save = page.locator("button[value=save]")
    assert await save.evaluate("button => getComputedStyle(button).backgroundColor") == BRAND_BLUE
    await assert_fits_a_phone(page)
    screenshot = tmp_path / f"preferences-{language.lang}-375.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 5_000

    await page.locator("#c-reviews").uncheck()
    await save.click()
    await expect(page.get_by_role("status")).to_be_visible()
    await assert_fits_a_phone(page)
    assert site.engine.choices.states("C42")["reviews"] is False
    assert tab.errors == []
    assert all(url.startswith(f"{site.url}/") for url in tab.requests), tab.requests


# -- every page at a phone's and a desktop's width, and the way back -----------------------

WIDTHS = [pytest.param(375, id="375"), pytest.param(1280, id="1280")]
SHOP_PAGE = "<!doctype html><html><body><h1>The shop</h1></body></html>"


def link_to(message: EmailMessage, page: str) -> str:
    """The one link of a mail's HTML part to ``page`` (``confirm``, ``preferences``, …)."""
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    parser = _Links()
    parser.feed(str(part.get_content()))
    [link] = {href for href in parser.hrefs if f"/{page}/" in href}
    return link


async def confirm_mail(engine: Notifier, smtp_server: SmtpServer, locale: str) -> EmailMessage:
    """newsletter.subscribed, dispatched: the double opt-in mail as it arrived."""
    before = len(smtp_server.received)
    engine.handle_event(event("newsletter.subscribed", locale=locale))
    await engine.dispatch_due()
    assert len(smtp_server.received) == before + 1, "the confirmation mail did not arrive"
    return smtp_server.received[-1].message


async def assert_laid_out(tab: Tab, name: str, lang: str, screenshots: Path) -> None:
    """The page in the customer's language, styled, and nothing broken at this width."""
    page = tab.page
    assert await page.get_attribute("html", "lang") == lang, name
    await expect(page.locator("h1")).to_be_visible()
    color = await page.locator("a, button").first.evaluate("el => getComputedStyle(el).color")
    assert color != "rgb(0, 0, 238)", f"{name}: the stylesheet did not load"
    width = page.viewport_size["width"] if page.viewport_size else 0
    await page.screenshot(path=str(screenshots / f"{name}-{lang}-{width}.png"), full_page=True)
    assert await page.evaluate(LAYOUT_PROBLEMS) == [], name


async def follow_the_way_back(tab: Tab, language: Language) -> None:
    """Click the link to all the choices: it lands on the preferences page."""
    page = tab.page
    await page.get_by_role("link", name=BACK[language.locale], exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(language.preferences_heading)


BACK = {"nl": "Al mijn e-mailvoorkeuren beheren", "en": "Manage all my email preferences"}
TO_THE_SHOP = {"nl": "Naar de website van Winparts", "en": "Go to the Winparts website"}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", LANGUAGES)
async def test_every_page_fits_the_screen_and_every_result_page_leads_back(
    site: Site,
    smtp_server: SmtpServer,
    clock: FrozenClock,
    browser: Browser,
    language: Language,
    width: int,
    tmp_path: Path,
) -> None:
    engine, lang = site.engine, language.lang
    links = footer_links(await review_mail(engine, smtp_server, clock, language.locale))
    confirm = link_to(await confirm_mail(engine, smtp_server, language.locale), "confirm")
    tab = await open_tab(browser, width=width, height=812)
    page = tab.page
    # Problem pages have no token to name a language: they follow the browser's.
    await page.set_extra_http_headers({"Accept-Language": lang})
    await page.route(
        f"{engine.settings.shop_url}/**",
        lambda route: route.fulfill(body=SHOP_PAGE, content_type="text/html"),
    )

    await page.goto(links["preferences"])
    await assert_laid_out(tab, "preferences", lang, tmp_path)
    await page.locator("#c-reviews").uncheck()
    await page.locator("button[value=save]").click()
    await expect(page.get_by_role("status")).to_be_visible()
    await assert_laid_out(tab, "saved", lang, tmp_path)
    await page.get_by_role("button", name=language.undo_button, exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(language.undone)
    await assert_laid_out(tab, "undone", lang, tmp_path)
    await follow_the_way_back(tab, language)

    await page.goto(links["unsubscribe"])
    await expect(page.get_by_role("heading", level=1)).to_have_text(language.unsubscribe_heading)
    await assert_laid_out(tab, "unsubscribe", lang, tmp_path)
    await page.get_by_role("button", name=language.unsubscribe_button, exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(language.unsubscribed)
    await assert_laid_out(tab, "unsubscribed", lang, tmp_path)
    await follow_the_way_back(tab, language)

    await page.goto(confirm)
    await assert_laid_out(tab, "confirm", lang, tmp_path)
    await page.locator("form button[type=submit]").click()
    await expect(page.get_by_role("status")).to_be_visible()
    assert engine.choices.states("C42")["newsletter"] is True
    await assert_laid_out(tab, "confirmed", lang, tmp_path)
    await follow_the_way_back(tab, language)
    assert tab.errors == []

    # From here on the answers are 403, 409 and 400 on purpose.
    await page.goto(links["preferences"])
    await page.locator("input[name=csrf]").evaluate("field => { field.value = 'stale'; }")
    await page.locator("button[value=save]").click()
    await expect(page.get_by_role("heading", level=1)).not_to_have_text(
        language.preferences_heading
    )
    await assert_laid_out(tab, "expired-form", lang, tmp_path)
    await follow_the_way_back(tab, language)

    # A one-click POST (a mailbox provider's, no human) on an essential category: 409.
    essential = f"{site.url}/unsubscribe/{preference_link(engine, 'service', locale=lang)}"
    await page.route(
        essential,
        lambda route: route.continue_(
            method="POST",
            post_data=ONE_CLICK_BODY,
            headers=route.request.headers | {"content-type": FORM},
        ),
    )
    response = await page.goto(essential)
    assert response is not None and response.status == 409
    await assert_laid_out(tab, "essential", lang, tmp_path)
    await page.unroute(essential)
    await page.get_by_role("link", name=TO_THE_SHOP[language.locale], exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("The shop")

    response = await page.goto(f"{site.url}/preferences/not-a-token")
    assert response is not None and response.status == 400
    await assert_laid_out(tab, "bad-link", lang, tmp_path)
    await page.get_by_role("link", name=TO_THE_SHOP[language.locale], exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("The shop")

    assert tab.errors and all(re.search(r"\b(403|409|400)\b", error) for error in tab.errors)
    assert all(
        url.startswith((f"{site.url}/", engine.settings.shop_url)) for url in tab.requests
    ), tab.requests
