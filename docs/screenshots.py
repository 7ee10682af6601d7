"""Regenerate the screenshots of docs/templates.md: ``python docs/screenshots.py``.

Each is ``notifier templates preview`` in Debian's chromium (Playwright, a
test dependency; launched and served as the tests do, by ``tests.browser``
and ``tests.served``) at 1000 by 700 px: ``preview.png`` on the shipped templates and
catalogs, ``preview-problem.png`` on a copy whose Dutch catalog lost a
closing quote. Run it after a change that shows in the preview, so the
docs show what a marketer sees.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.authoring import preview  # noqa: E402
from notifier.mail import i18n  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.served import serving  # noqa: E402
from tests.smtpd import free_port  # noqa: E402

VIEWPORT = {"width": 1000, "height": 700}
BROKEN = ('msgstr "Neem een kijkje"', 'msgstr "Neem een kijkje!')
"""The edit behind preview-problem.png: a translation without its closing quote."""


@contextmanager
def previewing(templates: Path, locales: Path) -> Iterator[str]:
    """``templates preview`` of these folders on a free local port; yields its URL."""
    with serving(preview.create_app(templates, locales), free_port()) as base:
        yield f"{base}/"


def shoot(url: str, target: Path) -> str:
    """A screenshot of the preview at ``url`` once its first mail has loaded; its visible text."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            frame = page.frame_locator("iframe").first
            frame.locator("body").wait_for()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(target))
            return page.inner_text("body") + "\n" + frame.locator("body").inner_text()
        finally:
            browser.close()


def regenerate(
    out: Path, templates: Path = ROOT / "templates", locales: Path = ROOT / "locales"
) -> dict[str, str]:
    """Both screenshots into ``out``; the text each shows, by file name."""
    shown = {}
    with previewing(templates, locales) as url:
        shown["preview.png"] = shoot(url, out / "preview.png")
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch)
        shutil.copytree(templates, copy / "templates")
        shutil.copytree(locales, copy / "locales")
        catalog = copy / "locales" / "nl" / i18n.CATALOG_PATH
        text = catalog.read_text(encoding="utf-8")
        assert BROKEN[0] in text, f"{catalog} no longer holds {BROKEN[0]}"
        catalog.write_text(text.replace(BROKEN[0], BROKEN[1], 1), encoding="utf-8")
        here = Path.cwd()
        os.chdir(copy)  # the preview names files relative to where it runs
        try:
            with previewing(copy / "templates", copy / "locales") as url:
                shown["preview-problem.png"] = shoot(url, out / "preview-problem.png")
        finally:
            os.chdir(here)
    return shown


if __name__ == "__main__":
    for name in regenerate(ROOT / "docs" / "img"):
        print(f"wrote docs/img/{name}")
