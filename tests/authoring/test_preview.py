"""Tests for notifier.authoring.preview: the page, its live reload, and the page in a real browser.

The app is first driven in-process through Starlette's test client; then
``notifier templates preview`` runs as a real subprocess and Debian's
chromium, through Playwright, looks at it the way a marketer would.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from notifier.authoring import preview
from notifier.flows import kinds
from notifier.mail import i18n, render
from tests import processes
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.smtpd import free_port

KINDS = sorted(kinds.KINDS)
SUBJECTS = {
    ("review_products", "nl"): "Wat vind je van je nieuwe onderdelen?",
    ("review_products", "en"): "What do you think of your new parts?",
    ("order_confirmation", "nl"): "Bedankt voor je bestelling WP-1001",
}


@dataclass(frozen=True)
class Copy:
    templates: Path
    locales: Path

    def edit(self, name: str, old: str, new: str) -> Path:
        path = self.templates / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return path


def make_copy(folder: Path) -> Copy:
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, folder / "templates")
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, folder / "locales")
    return Copy(folder / "templates", folder / "locales")


@pytest.fixture
def copy(tmp_path: Path) -> Copy:
    return make_copy(tmp_path)


@pytest.fixture
async def client(copy: Copy) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=preview.create_app(copy.templates, copy.locales))
    async with httpx.AsyncClient(transport=transport, base_url="http://preview") as test_client:
        yield test_client


async def fingerprint(client: httpx.AsyncClient) -> str:
    value: str = (await client.get("/fingerprint")).json()["fingerprint"]
    return value


# -- the app in-process ----------------------------------------------------------------------


async def test_the_page_lists_every_kind_in_every_locale(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for kind in KINDS:
        for locale in ("en", "nl"):
            assert f'id="{kind}-{locale}"' in page.text
            assert f'href="#{kind}-{locale}"' in page.text
            assert f'src="/mail/{kind}/{locale}?v=' in page.text
    for subject in SUBJECTS.values():
        assert subject in page.text
    assert "7 templates × 2 locales: all good" in page.text  # noqa: RUF001
    # The plain-text part sits beside the frames, links kept.
    assert "E-mailvoorkeuren [3]" in page.text


async def test_the_page_needs_nothing_from_elsewhere_and_runs_no_inline_script(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/")).text
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert url.startswith(("/", "#", "data:")), url
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert not re.search(r"<style|\sstyle=", page)
    for asset in ("/static/preview.js", "/static/preview.css"):
        assert (await client.get(asset)).status_code == 200


async def test_a_mail_is_served_for_its_frame(client: httpx.AsyncClient) -> None:
    mail = await client.get("/mail/order_confirmation/nl")
    assert mail.status_code == 200
    assert '<html lang="nl"' in mail.text
    assert mail.headers["content-security-policy"].startswith("script-src 'none'")
    assert (await client.get("/mail/order_confirmation/fr")).status_code == 404
    assert (await client.get("/mail/no_such_kind/nl")).status_code == 404


async def test_an_edit_changes_the_fingerprint_and_the_page(
    client: httpx.AsyncClient, copy: Copy
) -> None:
    before = await fingerprint(client)
    assert await fingerprint(client) == before
    await client.get("/")
    copy.edit(
        "review_products.mjml.j2",
        '{{ _("What do you think of your new parts?") }}',
        "Fresh subject from the workshop",
    )
    assert await fingerprint(client) != before
    page = (await client.get("/")).text
    assert "Fresh subject from the workshop" in page
    assert "is not in the en, nl catalog" not in page


async def test_a_catalog_edit_counts_as_a_change(client: httpx.AsyncClient, copy: Copy) -> None:
    before = await fingerprint(client)
    catalog = copy.locales / "nl" / i18n.CATALOG_PATH
    catalog.write_text(
        catalog.read_text(encoding="utf-8").replace(
            'msgstr "Neem een kijkje"', 'msgstr "Bekijk het nu"'
        ),
        encoding="utf-8",
    )
    assert await fingerprint(client) != before
    assert "Bekijk het nu" in (await client.get("/mail/newsletter/nl")).text


async def test_the_newsletter_sample_speaks_the_language_of_each_rendition(
    client: httpx.AsyncClient,
) -> None:
    english = (await client.get("/mail/newsletter/en")).text
    dutch = (await client.get("/mail/newsletter/nl")).text
    assert "Ready for the winter roads" in english and "Wiper blades from" in english
    assert "Winterklaar" not in english and "Ruitenwissers" not in english
    assert "Winterklaar de weg op" in dutch and "Ready for the winter" not in dutch


async def test_render_errors_show_on_the_page_with_file_and_line(
    client: httpx.AsyncClient, copy: Copy
) -> None:
    signoff = copy.edit("partials/signoff.mjml.j2", '{{ _("Kind regards,") }}', "{{ _(")
    page = await client.get("/")
    assert page.status_code == 200
    assert f"{signoff}:4: " in page.text
    assert "7 templates × 2 locales: 1 problem" in page.text  # noqa: RUF001
    # Kinds without the broken partial still render.
    assert SUBJECTS[("review_products", "en")] not in page.text
    assert 'src="/mail/newsletter/nl?v=' in page.text


# -- the real thing: a subprocess and a browser ----------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    copy: Copy


@contextlib.contextmanager
def serving(copy: Copy, folder: Path) -> Iterator[Server]:
    """``notifier templates preview`` as a subprocess on a free port, serving ``copy``."""
    port = free_port()
    args = ["templates", "preview", "--port", str(port)]
    args += ["--templates-dir", str(copy.templates), "--locales-dir", str(copy.locales)]
    process = processes.start(args, processes.notifier_env(), folder, folder / "preview.log")
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(processes.http_ready(url + "/fingerprint"), 20, "the preview server")
        yield Server(url, copy)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that only look."""
    folder = tmp_path_factory.mktemp("preview")
    with serving(make_copy(folder), folder) as server:
        yield server


@pytest.fixture
def server(copy: Copy, tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for a test that edits files."""
    with serving(copy, tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", [375, 1280])
def test_the_page_in_a_browser_fits_its_width(
    shared_server: Server, browser: Browser, width: int, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text))
        page.goto(shared_server.url + "/")
        for kind in KINDS:
            for locale in ("en", "nl"):
                expect(page.locator(f'nav a[href="#{kind}-{locale}"]')).to_have_text(locale)
                expect(page.locator(f"article#{kind}-{locale} .subject")).not_to_be_empty()
        for (kind, locale), subject in SUBJECTS.items():
            expect(page.locator(f"article#{kind}-{locale} .subject")).to_contain_text(subject)
        # Frames load as they scroll into view, as after a click in the sidebar.
        page.locator('nav a[href="#order_confirmation-nl"]').click()
        frame = page.frame_locator("article#order_confirmation-nl iframe").first
        expect(frame.get_by_text("Bedankt voor je bestelling!")).to_be_visible()
        # The script fitted the first frame to its mail.
        expect(page.locator("article#newsletter-en iframe").first).not_to_have_css(
            "height", "640px"
        )
        page.screenshot(path=str(tmp_path / f"preview-{width}.png"))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_an_edit_shows_in_the_browser_without_a_reload(server: Server, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server.url + "/")
        subject = page.locator("article#review_products-nl .subject")
        expect(subject).to_contain_text(SUBJECTS[("review_products", "nl")])
        server.copy.edit(
            "review_products.mjml.j2",
            '{{ _("What do you think of your new parts?") }}',
            "Live from the workshop",
        )
        server.copy.edit(
            "review_products.mjml.j2",
            '{{ _("How are your new parts doing?") }}',
            "A heading typed a moment ago",
        )
        expect(subject).to_contain_text("Live from the workshop", timeout=15_000)
        page.locator('nav a[href="#review_products-nl"]').click()
        frame = page.frame_locator("article#review_products-nl iframe").first
        expect(frame.get_by_text("A heading typed a moment ago")).to_be_visible()

        server.copy.edit("partials/signoff.mjml.j2", '{{ _("Kind regards,") }}', "{{ _(")
        expect(page.locator("#check")).to_contain_text(
            "partials/signoff.mjml.j2:4:", timeout=15_000
        )
    finally:
        page.close()
