"""The development inbox of a real ``notifier serve``: its mail view shows the mail in chromium.

The mail's HTML is framed by the inbox's own page, so that one answer may be
framed by the same origin; every other answer keeps ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS, LAYOUT_PROBLEMS
from tests.conftest import event
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A serve on the embedded default holding one captured mail: its base URL and mail id."""
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = notifier_env(api_tokens="inbox-token", database_url=f"sqlite:///{folder / 'n.db'}")
    server = start(["serve", "--port", str(port)], env, folder, folder / "serve.log")
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve to answer")
        auth = {"Authorization": "Bearer inbox-token"}
        posted = httpx.post(f"{base}/v1/events", json=event("order.placed"), headers=auth)
        assert posted.status_code == 202, posted.text

        def listed() -> bool:
            return 'href="/dev/inbox/' in httpx.get(f"{base}/dev/inbox").text

        wait_until(listed, 30, "the mail in the development inbox")
        page = httpx.get(f"{base}/dev/inbox").text
        yield base, page.split('href="/dev/inbox/', 1)[1].split('"', 1)[0]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_only_the_mail_itself_may_be_framed_and_only_by_the_same_origin(
    served: tuple[str, str],
) -> None:
    base, mail_id = served
    mail = httpx.get(f"{base}/dev/inbox/{mail_id}/html")
    assert mail.headers["x-frame-options"] == "SAMEORIGIN"
    policy = mail.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "sandbox" in policy
    for path in ("/dev/inbox", f"/dev/inbox/{mail_id}", "/healthz"):
        answer = httpx.get(f"{base}{path}")
        assert answer.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no chromium at {CHROMIUM}")
def test_the_mail_view_shows_the_mail_in_its_frame(served: tuple[str, str]) -> None:
    base, mail_id = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(f"{base}/dev/inbox")
            page.locator(f'a[href="/dev/inbox/{mail_id}"]').first.click()
            frame = page.frame_locator('iframe[title="HTML part"]')
            expect(frame.get_by_text("Bedankt voor je bestelling!")).to_be_visible()
            expect(frame.get_by_text("Remblokken voor")).to_be_visible()
            # Another origin may not frame it: a page of its own (about:blank) gets nothing.
            elsewhere = browser.new_page()
            elsewhere.set_content(f'<iframe src="{base}/dev/inbox/{mail_id}/html"></iframe>')
            elsewhere.wait_for_load_state("load")
            framed = elsewhere.frames[-1]
            assert "Bedankt" not in framed.content()
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no chromium at {CHROMIUM}")
@pytest.mark.parametrize("width", [375, 1280])
def test_the_inbox_pages_fit_the_screen(served: tuple[str, str], width: int) -> None:
    """The list and the mail view, on a phone and a desktop: nothing a reader sees as broken."""
    base, mail_id = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 812})
            for path in ("/dev/inbox", f"/dev/inbox/{mail_id}"):
                page.goto(f"{base}{path}")
                expect(page.locator("h1")).to_be_visible()
                assert page.evaluate(LAYOUT_PROBLEMS) == [], path
        finally:
            browser.close()
