"""What stops mail before anything is accepted: no templates, no catalogs, a file that fails."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from notifier.mail import i18n, preflight, render


def copied(tmp_path: Path) -> tuple[Path, Path]:
    templates, locales = tmp_path / "templates", tmp_path / "locales"
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, templates)
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, locales)
    return templates, locales


def test_the_project_templates_compile_in_every_locale_and_fast() -> None:
    renderer = render.Renderer(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR)
    started = time.perf_counter()
    assert preflight.problems(renderer) == []
    assert time.perf_counter() - started < 2  # ~0.2 s here: start-up stays quick


def test_a_broken_partial_is_named_with_its_path_and_line(tmp_path: Path) -> None:
    templates, locales = copied(tmp_path)
    (templates / "partials" / "signoff.mjml.j2").write_text(
        "<mj-text>\n{% if %}\n</mj-text>\n", encoding="utf-8"
    )
    [problem] = preflight.problems(render.Renderer(templates, locales))
    assert problem.startswith(f"{templates / 'partials' / 'signoff.mjml.j2'}:2: ")


def test_a_broken_catalog_is_named_in_the_locales_folder(tmp_path: Path) -> None:
    templates, locales = copied(tmp_path)
    catalog = locales / "en" / i18n.CATALOG_PATH
    catalog.write_text(catalog.read_text(encoding="utf-8") + "\ngarbage\n", encoding="utf-8")
    problems = preflight.problems(render.Renderer(templates, locales))
    assert problems and problems[0].startswith(f"{catalog}:"), problems


def test_no_templates_no_catalogs_or_a_missing_kind_stop_mail(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert preflight.problems(render.Renderer(empty, i18n.DEFAULT_LOCALES_DIR)) == [
        f"{empty.resolve()}: no templates (*.mjml.j2) here"
    ]
    [problem] = preflight.problems(render.Renderer(render.DEFAULT_TEMPLATES_DIR, empty))
    assert problem.startswith(f"{empty.resolve()}: no catalogs")
    templates, locales = copied(tmp_path)
    (templates / "newsletter.mjml.j2").unlink()
    assert preflight.problems(render.Renderer(templates, locales)) == [
        f"{templates / 'newsletter.mjml.j2'}: no template for the kind 'newsletter'"
    ]
