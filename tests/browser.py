"""Debian's chromium for the page tests, launched the way this machine allows."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Without the networking flags chromium keeps dialling out on a machine with no network."""

LAYOUT_PROBLEMS = (Path(__file__).parent / "layout_problems.js").read_text(encoding="utf-8")
"""A function for ``page.evaluate``: what a reader would see as broken at this width (a list)."""
