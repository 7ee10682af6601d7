"""Every mail as a customer's phone and desktop show it: Debian's chromium, through Playwright.

Each kind in each locale is rendered from its sample (``templates/samples/``,
as ``notifier templates preview`` shows it) and laid out at the desktop
width of the layout (600 px) and at a phone's (375 px): nothing may be wider
than the screen, and no line may dangle (a "· KvK 12345678" or the last word
of a footer item alone on a line).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from notifier.authoring import check
from notifier.flows import kinds
from notifier.mail import i18n, render
from tests.browser import CHROMIUM, CHROMIUM_ARGS, LAYOUT_PROBLEMS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"no chromium at {CHROMIUM} (apt install chromium)"
    ),
]
WIDTHS = [600, 375]
LOCALES = ["en", "nl"]


@pytest.fixture(scope="module")
def mails() -> dict[tuple[str, str], str]:
    """The HTML of every kind in every locale, rendered from its sample."""
    report = check.run(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR)
    assert report.ok, [problem.message for problem in report.problems]
    return {
        (rendition.kind, rendition.locale): rendition.mail.html
        for rendition in report.renditions
        if rendition.mail is not None
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def layout_problems(browser: Browser, html: str, width: int, screenshot: Path) -> list[str]:
    """What a reader of ``html`` would see as broken in a ``width`` px wide window."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        page.set_content(html)
        page.screenshot(path=str(screenshot), full_page=True)
        problems: list[str] = page.evaluate(LAYOUT_PROBLEMS)
        return problems
    finally:
        page.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_the_mail_fits_the_screen_with_no_dangling_line(
    mails: dict[tuple[str, str], str],
    browser: Browser,
    kind: str,
    locale: str,
    width: int,
    tmp_path: Path,
) -> None:
    screenshot = tmp_path / f"{kind}-{locale}-{width}.png"
    assert layout_problems(browser, mails[kind, locale], width, screenshot) == []
    assert screenshot.stat().st_size > 5_000


FOOTER_AS_IT_WAS = """<!doctype html><html lang="nl"><body style="margin:0">
<div style="padding:0 32px;font:13px/1.6 monospace;text-align:center">
Winparts B.V. · Industrieweg 12, 3542 AD Utrecht · KvK-nummer 12345678</div></body></html>"""
"""The footer line that wrapped to a dangling "· KvK" at 375 px, before its items were whole.

In a monospace font, so that it wraps inside an item whatever fonts the machine has: some
40 characters fit a line, and the address item runs from the 17th to the 48th."""


def test_the_check_sees_a_dangling_footer_line(browser: Browser, tmp_path: Path) -> None:
    problems = layout_problems(browser, FOOTER_AS_IT_WAS, 375, tmp_path / "footer.png")
    assert problems, "the check passed the footer that dangled"
    assert any("KvK" in problem or "Utrecht" in problem for problem in problems), problems


def test_the_check_sees_a_mail_wider_than_the_screen(browser: Browser, tmp_path: Path) -> None:
    wide = '<!doctype html><html><body><table width="600"><tr><td>x</td></tr></table></body></html>'
    problems = layout_problems(browser, wide, 375, tmp_path / "wide.png")
    assert problems[0] == "the page is 608 px wide in a 375 px window", problems


def test_the_check_takes_a_newline_in_preformatted_text_for_a_line_break(
    browser: Browser, tmp_path: Path
) -> None:
    """A mail's plain part shown in <pre> (the inbox) breaks where its text does."""
    plain = "Afmelden voor deze e-mails [3]\nWinparts B.V. · KvK 12345678 · Utrecht"
    page = f"<!doctype html><html><body><pre>{plain}</pre><p>{plain}</p></body></html>"
    problems = layout_problems(browser, page, 1280, tmp_path / "pre.png")
    assert problems == [], problems
