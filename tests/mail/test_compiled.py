"""The compiled path (``mail.compiled``) gives the very bytes of the per-mail path.

Every kind x locale x sample variant (the sample, each optional field left
out, all of them left out, as ``templates check`` renders them), each
filled into a shape compiled from *another* mail of that shape: the same
variant with every free-text value changed (markup, ampersands, quotes,
backslashes, a long name), so no value the compiled form shows can come from
the mail it was compiled with.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from notifier.authoring import samples
from notifier.flows import kinds
from notifier.mail import compiled, i18n, render

KINDS = sorted(kinds.KINDS)
LOCALES = ["nl", "en"]
KEPT = frozenset({"links", "shop", "message", "newsletter", "locale", "email", "currency"})
"""Values left as the sample has them: URLs, settings, the campaign (compiled in) and codes."""
ODD = ' & "Zoë" <b>\\n</b> ' + "lang " * 30


def variants(kind: str) -> list[tuple[str, dict[str, Any]]]:
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, kind))
    known = kinds.get(kind)
    present = [path for path in samples.leavable(known) if samples.has(sample, path)]
    found = [("sample", sample)]
    found += [(f"without {path}", samples.without(sample, (path,))) for path in present]
    if len(present) > 1:
        found.append(("minimal", samples.minimal(sample, known)))
    return found


def changed(value: Any, key: str = "") -> Any:
    """``value`` with every free-text string changed; numbers, URLs and codes kept."""
    if key in KEPT:
        return copy.deepcopy(value)
    if isinstance(value, dict):
        return {k: changed(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [changed(item, key) for item in value]
    if isinstance(value, str) and not value.startswith("http") and not _number(value):
        return value + ODD
    return value


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def per_mail() -> render.Renderer:
    return render.Renderer(
        render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR, compile_shapes=False
    )


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_mail_is_the_per_mail_mail(
    kind: str, locale: str, per_mail: render.Renderer
) -> None:
    compiled_renderer = render.Renderer(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR)
    for label, context in variants(kind):
        other = changed(context)
        for first, second in ((context, other), (other, context)):
            compiled_renderer.render(kind, locale, first)  # compiles the shape
            before = compiled_renderer.compiled_shapes(), compiled_renderer.counts["per_mail"]
            mail = compiled_renderer.render(kind, locale, second)
            after = compiled_renderer.compiled_shapes(), compiled_renderer.counts["per_mail"]
            assert after == before, f"{label}: not compiled"
            assert mail == per_mail.render(kind, locale, second), label
    assert compiled_renderer.fallbacks() == {}
    assert compiled_renderer.counts["filled"] > 0


def test_a_shape_is_compiled_once_and_filled_after() -> None:
    renderer = render.Renderer(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR)
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, "order_confirmation"))
    for number in range(20):
        context = copy.deepcopy(sample)
        context["order"]["number"] = f"WP-{number}"
        renderer.render("order_confirmation", "nl", context)
    assert renderer.compiled_shapes() == 1


def test_an_edited_template_is_a_new_version(tmp_path: Path) -> None:
    """A shape is kept under the digest of the sources it was made from."""
    templates = tmp_path / "templates"
    import shutil

    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, templates)
    sample = samples.load(samples.path(templates, "review_service"))
    first = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR)
    first.render("review_service", "en", sample)
    file = templates / "review_service.mjml.j2"
    file.write_text(file.read_text().replace("How was our service?", "Tell us!"))
    second = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR)
    mail = second.render("review_service", "en", sample)
    assert "Tell us!" in second.render("review_service", "en", sample).html
    assert mail.html == second.render("review_service", "en", sample).html
    assert first.version() != second.version()


def test_a_template_that_cannot_be_compiled_falls_back(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    import shutil

    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, templates)
    file = templates / "review_service.mjml.j2"
    file.write_text(
        file.read_text().replace(
            '{{ _("How was our service?") }}', "{{ (order.number ~ 'x')|upper }}"
        )
    )
    sample = samples.load(samples.path(templates, "review_service"))
    renderer = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR)
    per_mail = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR, compile_shapes=False)
    for _ in range(2):
        assert renderer.render("review_service", "en", sample) == per_mail.render(
            "review_service", "en", sample
        )
    assert set(renderer.fallbacks()) == {"review_service.mjml.j2"}
    assert compiled.MAX_SHAPES > 0
