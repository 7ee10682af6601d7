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
from notifier.mail import compiled, deferred, i18n, plaintext, render

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
    assert compiled_renderer.counts["text_walked"] == 0  # the text laid out once, too


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


def _slot(number: int, escaped: bool = True) -> str:
    return f"{deferred.OPEN}{number}{deferred.HTML if escaped else deferred.RAW}"


PROSE = (
    "<mjml><mj-head><mj-title>x</mj-title></mj-head><mj-body><mj-section><mj-column>"
    f"<mj-text>Beste {_slot(0)}, je bestelling {_slot(1)} is onderweg naar een adres dat"
    f" we hier lang genoeg maken om te wrappen.</mj-text>"
    f'<mj-button href="{_slot(2)}">Volg {_slot(0)}</mj-button>'
    f'<mj-text><a href=" https://shop.example/{_slot(3)} ">hier</a> en '
    f'<a href="https://shop.example/{_slot(4)}">daar</a></mj-text>'
    f'<mj-image alt="{_slot(0)} logo" src="https://shop.example/l.png" />'
    f"<mj-table><tr><td>{_slot(5)}</td><td>2 x € 34,95</td></tr>"
    f"<tr><td>Totaal</td><td>{_slot(1)}</td></tr></mj-table>"
    "</mj-column></mj-section></mj-body></mjml>"
)
"""Placeholders where templates put them: prose, a button, link addresses, an alt, cells."""


@pytest.mark.parametrize(
    "values",
    [
        ["Jan", "WP-1", "https://shop.example/t", "a", "b", "Remblokken"],
        ["Zo&#34;ë &amp; co", "&lt;b&gt;", "mailto:Volg Zo&#34;ë &amp; co", "x", "x", ""],
        ["  ", "", " https://shop.example/t ", "same", "same", "Eerste<br />\ntweede regel"],
        ["lang" * 30, "WP-" + "9" * 90, "https://shop.example/" + "t" * 80, "", "", "a  b"],
    ],
    ids=["plain", "entities and a mailto button", "blank values and shared links", "long"],
)
def test_a_text_shape_filled_reads_as_the_mjml_walked(values: list[str]) -> None:
    """Wrapping, columns and link references are decided by the filled words, as per mail."""
    shape = compiled.TextShape.of(PROSE)
    assert shape is not None
    filled = compiled.Filler(PROSE).fill(values)
    assert shape.fill(values) == plaintext.to_text(filled)


@pytest.mark.parametrize(
    "source",
    [
        f'<mj-text><p style="color:{_slot(0)}">x</p></mj-text>',
        f"<mj-text><p{_slot(0)}>x</p></mj-text>",
        f"<mj-text>&amp{_slot(0)}</mj-text>",
        f"<mj-table>\n  {_slot(0)}<tr><td>x</td></tr></mj-table>",
        f"<mj-table><tr><td>x</td></tr>{_slot(0)}</mj-table>",
    ],
    ids=["in a style", "in a tag", "after an open reference", "in a table's frame", "after a row"],
)
def test_a_placeholder_where_a_value_could_change_the_parse_has_no_text_shape(
    source: str,
) -> None:
    assert compiled.TextShape.of(source) is None


@pytest.mark.parametrize(
    "value",
    ["A & B", "<b>x</b>", "a\rb", "a\x02b", "<br />"],
    ids=["raw ampersand", "raw markup", "carriage return", "a mark", "raw line break"],
)
def test_a_value_the_parser_might_read_otherwise_sends_the_mail_through_the_walk(
    value: str,
) -> None:
    source = f"<mj-text>Hallo {_slot(0, escaped=False)}</mj-text>"
    shape = compiled.TextShape.of(source)
    assert shape is not None
    assert shape.fill([value]) is None
