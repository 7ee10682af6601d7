"""docs/screenshots.py regenerates the preview screenshots of docs/templates.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests import ROOT
from tests.browser import CHROMIUM

SCRIPT = ROOT / "docs" / "screenshots.py"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no chromium at {CHROMIUM}"),
]


def test_the_script_shoots_what_the_docs_describe(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("screenshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    shown = script.regenerate(tmp_path)

    assert "all good" in shown["preview.png"]
    assert "Ready for the winter roads" in shown["preview.png"]
    assert "Hello," in shown["preview.png"] and "Daniël" not in shown["preview.png"]
    assert "messages.po:" in shown["preview-problem.png"]
    assert "without its closing quote" in shown["preview-problem.png"]
    for name in ("preview.png", "preview-problem.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (SCRIPT.parent / "img" / name).stat().st_size > 20_000
