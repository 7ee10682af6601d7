"""Tests for notifier.authoring.check: shipped templates pass; each fault is named where it is.

Every fault is seeded in a scratch copy of templates/ and locales/, the way
a marketer would make it, and the report must name the file and line to fix.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages import frontend

from notifier import errors
from notifier.authoring import check, markup, samples, sources, translations
from notifier.flows import kinds
from notifier.mail import i18n, render
from tests import ROOT

KINDS = sorted(kinds.KINDS)
UNSUBSCRIBABLE = [
    "newsletter",
    "order_confirmation",
    "review_products",
    "review_service",
    "shipping_notice",
]


@dataclass(frozen=True)
class Copy:
    """A scratch copy of the project's templates and catalogs."""

    templates: Path
    locales: Path

    def run(self) -> check.Report:
        return check.run(self.templates, self.locales)


@pytest.fixture
def copy(tmp_path: Path) -> Copy:
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, tmp_path / "templates")
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, tmp_path / "locales")
    return Copy(tmp_path / "templates", tmp_path / "locales")


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first occurrence of ``text`` in ``path``."""
    content = path.read_text(encoding="utf-8")
    assert text in content, f"{text!r} not in {path}"
    return content[: content.index(text)].count("\n") + 1


def replace(path: Path, old: str, new: str) -> None:
    content = path.read_text(encoding="utf-8")
    assert old in content, f"{old!r} not in {path}"
    path.write_text(content.replace(old, new, 1), encoding="utf-8")


def insert_after(path: Path, line: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(line, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def only(report: check.Report) -> check.Problem:
    assert len(report.problems) == 1, [problem.format() for problem in report.problems]
    return report.problems[0]


def test_the_shipped_templates_pass() -> None:
    report = check.run(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR)
    assert report.problems == []
    assert report.ok
    assert report.summary() == "7 templates × 2 locales: all good"  # noqa: RUF001
    assert report.kinds == KINDS
    assert [(r.kind, r.locale) for r in report.renditions] == [
        (kind, locale) for kind in KINDS for locale in ("en", "nl")
    ]
    assert all(r.mail is not None and not r.problems for r in report.renditions)


def test_babel_cfg_reads_templates_as_the_check_does() -> None:
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        _, options = frontend.parse_mapping_cfg(handle)  # type: ignore[no-untyped-call]
    assert options["templates/**.j2"] == translations.JINJA_OPTIONS


# -- MJML ------------------------------------------------------------------------------


def test_an_mjml_closing_tag_too_many(copy: Copy) -> None:
    kind = copy.templates / "review_service.mjml.j2"
    line = line_of(kind, "</mj-section>")
    replace(kind, "</mj-section>", "</mj-section></mj-column>")
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line)
    assert "</mj-column> closes nothing" in problem.message


def test_a_stray_closing_tag_on_its_own_line_among_look_alikes(copy: Copy) -> None:
    kind = copy.templates / "review_service.mjml.j2"
    line = line_of(kind, "  </mj-column>")
    insert_after(kind, line, "  </mj-column>")
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line + 1)


def test_an_unclosed_mjml_element(copy: Copy) -> None:
    kind = copy.templates / "review_service.mjml.j2"
    heading = '<mj-text mj-class="heading">{{ _("How was our service?") }}</mj-text>'
    line = line_of(kind, heading)
    replace(kind, heading, heading.removesuffix("</mj-text>"))
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line)
    assert "<mj-text> is not closed" in problem.message


def test_an_unknown_mjml_element_in_a_partial(copy: Copy) -> None:
    footer = copy.templates / "partials" / "footer.mjml.j2"
    line = line_of(footer, "<mj-column>")
    replace(footer, "<mj-column>", "<mj-colum>")
    problem = only(copy.run())
    assert (problem.file, problem.line) == (footer, line)
    assert "unknown MJML element <mj-colum>" in problem.message


def test_an_unfinished_mjml_tag(copy: Copy) -> None:
    kind = copy.templates / "shipping_notice.mjml.j2"
    line = line_of(kind, "<mj-column>")
    replace(kind, "<mj-column>", "<mj-column")
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line)


# -- Jinja and sample data -------------------------------------------------------------


def test_a_jinja_syntax_error_in_a_partial(copy: Copy) -> None:
    signoff = copy.templates / "partials" / "signoff.mjml.j2"
    line = line_of(signoff, '{{ _("Kind regards,") }}')
    replace(signoff, '{{ _("Kind regards,") }}', '{{ _("Kind regards,") }')
    problem = only(copy.run())
    assert (problem.file, problem.line) == (signoff, line)


def test_a_syntax_error_in_a_partial_no_template_includes(copy: Copy) -> None:
    unused = copy.templates / "partials" / "unused.mjml.j2"
    unused.write_text("<mj-text>\n{% if %}\n</mj-text>\n", encoding="utf-8")
    problem = only(copy.run())
    assert (problem.file, problem.line) == (unused, 2)


def test_a_variable_missing_from_the_sample_is_named_where_the_template_uses_it(
    copy: Copy,
) -> None:
    sample = samples.path(copy.templates, "review_products")
    data = json.loads(sample.read_text(encoding="utf-8"))
    del data["links"]["review_url"]
    sample.write_text(json.dumps(data, indent=2), encoding="utf-8")
    kind = copy.templates / "review_products.mjml.j2"
    problem = only(copy.run())
    # Jinja fails inside the button macro; the line to fix is the one naming the variable.
    assert (problem.file, problem.line) == (kind, line_of(kind, "links.review_url"))
    assert "review_url" in problem.message


def test_a_misspelt_variable_in_a_template(copy: Copy) -> None:
    kind = copy.templates / "order_confirmation.mjml.j2"
    text = "{% trans number=order.number %}\n        We have"
    line = line_of(kind, text)
    replace(kind, text, text.replace("order.number", "order.numbr"))
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line)
    assert "numbr" in problem.message


def test_a_sample_that_is_not_json(copy: Copy) -> None:
    sample = samples.path(copy.templates, "review_products")
    replace(sample, '"name": "Jan de Vries",', '"name": "Jan de Vries"')
    problem = only(copy.run())
    assert (problem.file, problem.line) == (sample, 5)
    assert "not valid JSON" in problem.message


# -- optional fields (kinds table) ---------------------------------------------------------

UNGUARDED = "is optional (kinds table) but read unguarded; put what reads it inside"


def test_a_partial_reading_an_optional_field_unguarded(copy: Copy) -> None:
    address = copy.templates / "partials" / "address.mjml.j2"
    address.write_text(
        "<mj-section>\n"
        "  <mj-column>\n"
        "    <mj-text>\n"
        "      {{ order.shipping_address.name }}<br />\n"
        "      {{ order.shipping_address.city }}\n"
        "    </mj-text>\n"
        "  </mj-column>\n"
        "</mj-section>\n",
        encoding="utf-8",
    )
    report = copy.run()
    assert [problem.format(copy.templates) for problem in report.problems] == [
        f"partials/address.mjml.j2:4: order.shipping_address {UNGUARDED} "
        "{% if order.shipping_address is given %}…{% endif %}",
        f"partials/address.mjml.j2:4: order.shipping_address.name {UNGUARDED} "
        "{% if order.shipping_address.name is given %}…{% endif %}",
        f"partials/address.mjml.j2:5: order.shipping_address.city {UNGUARDED} "
        "{% if order.shipping_address.city is given %}…{% endif %}",
    ]
    assert not report.ok


@pytest.mark.parametrize(
    ("file", "guard", "reads", "field"),
    [
        (  # handed to the button macro: the line naming it, not the macro's
            "shipping_notice.mjml.j2",
            "{%- if data.tracking_url is given %}",
            "button(data.tracking_url",
            "data.tracking_url",
        ),
        (  # a trans variable
            "shipping_notice.mjml.j2",
            "{%- if data.carrier is given %}",
            "number=order.number, carrier=data.carrier",
            "data.carrier",
        ),
        (  # a filter's argument
            "partials/order_lines.mjml.j2",
            "{%- if order.total is given %}",
            "order.total|money",
            "order.total",
        ),
    ],
)
def test_an_optional_field_read_unguarded_is_named_where_it_is_read(
    copy: Copy, file: str, guard: str, reads: str, field: str
) -> None:
    path = copy.templates / file
    replace(path, guard, "{%- if true %}")
    line = line_of(path, reads)
    problem = only(copy.run())
    assert (problem.file, problem.line) == (path, line)
    assert problem.message.startswith(f"{field} {UNGUARDED}")


def test_the_smallest_context_finds_what_leaving_out_one_field_does_not(copy: Copy) -> None:
    """A block shown only when lines and carrier are both missing: only the minimal context."""
    kind = copy.templates / "shipping_notice.mjml.j2"
    heading = '<mj-text mj-class="heading">'
    line = line_of(kind, heading) + 1
    insert_after(
        kind,
        line - 1,
        "    {% if order.lines is not given and data.carrier is not given %}"
        "<mj-text>{{ order.shipping_address.city }}</mj-text>{% endif %}",
    )
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line)
    assert problem.message.startswith(f"order.shipping_address {UNGUARDED}")


def test_another_fault_without_an_optional_field_says_which_context(copy: Copy) -> None:
    address = copy.templates / "partials" / "address.mjml.j2"
    replace(
        address,
        "{%- if postal is given -%}",
        "{%- if postal is not given %}<mj-txt>?</mj-txt>{% endif %}\n{%- if postal is given -%}",
    )
    report = copy.run()
    messages = [problem.message for problem in report.problems]
    unknown = "MJML: unknown MJML element <mj-txt> (MJML drops it without a word)"
    assert {(problem.file, problem.line) for problem in report.problems} == {(address, 6)}
    assert messages == [
        f"without any optional field (kinds table): {unknown}",
        f"without order.shipping_address (kinds table): {unknown}",
    ]


def test_the_minimal_context_comes_from_the_kinds_table() -> None:
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, "shipping_notice"))
    minimal = samples.minimal(sample, kinds.KINDS["shipping_notice"])
    assert minimal["order"] == {"id": "O-1002", "number": "WP-1002", "currency": "EUR"}
    assert minimal["data"] == {}
    assert minimal["links"] == sample["links"]
    assert "shipping_address" in sample["order"]  # the sample itself is left as it was
    confirmation = kinds.KINDS["order_confirmation"]
    assert "order.total" not in samples.leavable(confirmation)
    kept = samples.minimal(sample, confirmation)["order"]
    assert set(kept) == {"id", "number", "currency", "total"}
    partial = samples.without(sample, ("order.shipping_address.city", "data.nothing.deeper"))
    assert set(partial["order"]["shipping_address"]) == {"name", "street", "postcode", "country"}
    assert samples.has(sample, "order.shipping_address.city")
    assert not samples.has(partial, "order.shipping_address.city")


# -- translations ------------------------------------------------------------------------


def test_an_untranslated_string(copy: Copy) -> None:
    catalog = copy.locales / "nl" / "LC_MESSAGES" / "messages.po"
    replace(catalog, 'msgstr "Neem een kijkje"', 'msgstr ""')
    problem = only(copy.run())
    assert (problem.file, problem.line) == (catalog, line_of(catalog, 'msgid "Take a look"'))
    assert problem.message == "untranslated: 'Take a look'"


def test_a_fuzzy_string(copy: Copy) -> None:
    catalog = copy.locales / "en" / "LC_MESSAGES" / "messages.po"
    replace(catalog, 'msgid "Take a look"', '#, fuzzy\nmsgid "Take a look"')
    problem = only(copy.run())
    assert (problem.file, problem.line) == (catalog, line_of(catalog, 'msgid "Take a look"'))
    assert problem.message == "fuzzy: 'Take a look'"


def test_a_new_string_not_yet_in_the_catalogs(copy: Copy) -> None:
    kind = copy.templates / "review_service.mjml.j2"
    replace(kind, '_("Rate our service")', '_("Rate us now")')
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line_of(kind, "Rate us now"))
    assert "'Rate us now' is not in the en, nl catalog" in problem.message


@pytest.mark.parametrize(
    "call",
    ["_(item.title)", 'pgettext("shop", item.title)', 'ngettext("one item", item.title, 2)'],
)
def test_data_handed_to_gettext(copy: Copy, call: str) -> None:
    """A translation is trusted HTML: data given to _() would reach the mail unescaped."""
    kind = copy.templates / "newsletter.mjml.j2"
    replace(kind, 'padding="0 0 8px 0">{{ item.title }}', f'padding="0 0 8px 0">{{{{ {call} }}}}')
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, line_of(kind, call))
    assert problem.message == check.TRANSLATED_DATA


# -- the rules of a finished mail ------------------------------------------------------


def test_a_missing_unsubscribe_link(copy: Copy) -> None:
    footer = copy.templates / "partials" / "footer.mjml.j2"
    replace(footer, "{%- if message.unsubscribable %}\n", "{%- if false %}\n")
    report = copy.run()
    assert [(p.file.name, p.line) for p in report.problems] == [
        (kind + render.SUFFIX, 1) for kind in UNSUBSCRIBABLE
    ]
    assert all("has no unsubscribe link" in p.message for p in report.problems)


def test_a_missing_preferences_link(copy: Copy) -> None:
    footer = copy.templates / "partials" / "footer.mjml.j2"
    replace(footer, '<a href="{{ links.preferences_url }}"', '<a href="{{ links.shop_url }}"')
    report = copy.run()
    assert {p.file.name for p in report.problems} == {k + render.SUFFIX for k in UNSUBSCRIBABLE}
    assert all("has no preferences link" in p.message for p in report.problems)


def test_an_image_without_alt(copy: Copy) -> None:
    header = copy.templates / "partials" / "header.mjml.j2"
    line = line_of(header, "<mj-column>")
    insert_after(header, line, '    <mj-image src="https://www.winparts.example/logo.png" />')
    problem = only(copy.run())
    assert (problem.file, problem.line) == (header, line + 1)
    assert "image without alt text" in problem.message


def test_an_image_with_alt_is_fine(copy: Copy) -> None:
    header = copy.templates / "partials" / "header.mjml.j2"
    image = '    <mj-image src="https://www.winparts.example/logo.png" alt="Winparts" />'
    insert_after(header, line_of(header, "<mj-column>"), image)
    assert copy.run().ok


def test_a_missing_subject(copy: Copy) -> None:
    kind = copy.templates / "review_products.mjml.j2"
    subject = '{% block subject %}{{ _("What do you think of your new parts?") }}{% endblock %}\n'
    replace(kind, subject, "")
    problem = only(copy.run())
    assert (problem.file, problem.line) == (kind, 1)
    assert problem.message.startswith("missing subject")


def test_an_over_long_subject(copy: Copy) -> None:
    kind = copy.templates / "review_products.mjml.j2"
    line = line_of(kind, "{% block subject %}")
    replace(
        kind,
        "{% endblock %}",
        ' {{ order.lines|map(attribute="name")|join(", ") }}{% endblock %}',
    )
    report = copy.run()
    assert [(p.file, p.line) for p in report.problems] == [(kind, line)] * 3
    # The subject reads order.lines, which the kinds table lets the shop leave out.
    unguarded, english, dutch = report.problems
    assert unguarded.message.startswith("order.lines is optional (kinds table)")
    assert "the en subject has 148 characters; keep it to 78" in english.message
    assert "the nl subject" in dutch.message


def test_html_over_gmails_clipping_size(copy: Copy) -> None:
    sample = samples.path(copy.templates, "newsletter")
    data = json.loads(sample.read_text(encoding="utf-8"))
    for copy_of_a_locale in [data, *data[samples.LOCALES].values()]:
        copy_of_a_locale["newsletter"]["items"] *= 40
    sample.write_text(json.dumps(data, indent=2), encoding="utf-8")
    report = copy.run()
    kind = copy.templates / "newsletter.mjml.j2"
    assert [(p.file, p.line) for p in report.problems] == [(kind, 1), (kind, 1)]
    assert "KB of HTML, over the limit of 100 KB (Gmail clips" in report.problems[0].message


def test_html_close_to_the_limit_is_a_warning_not_a_problem(copy: Copy) -> None:
    sample = samples.path(copy.templates, "newsletter")
    data = json.loads(sample.read_text(encoding="utf-8"))
    for copy_of_a_locale in [data, *data[samples.LOCALES].values()]:
        copy_of_a_locale["newsletter"]["items"] *= 6  # some 94 KB of HTML
    sample.write_text(json.dumps(data, indent=2), encoding="utf-8")
    report = copy.run()
    assert report.ok, report.problems
    kind = copy.templates / "newsletter.mjml.j2"
    assert {(warning.file, warning.line) for warning in report.warnings} == {(kind, 1)}
    assert len(report.warnings) == len(report.locales)
    assert "close to the limit of 100 KB" in report.warnings[0].message


def test_a_sample_link_that_runs_script_is_named_at_its_line(copy: Copy) -> None:
    sample = samples.path(copy.templates, "newsletter")
    replace(
        sample,
        '"url": "https://www.winparts.example/accu/',
        '"url": "javascript:alert(1)//www.winparts.example/accu/',
    )
    report = copy.run()
    [problem] = [p for p in report.problems if p.file == sample]
    assert problem.line == line_of(sample, "javascript:alert(1)")
    assert problem.message.startswith("newsletter.items.0.url: a link must be an http/https/mailto")


def test_a_template_link_that_runs_script_is_a_problem(copy: Copy) -> None:
    template = copy.templates / "newsletter.mjml.j2"
    replace(template, "button(item.url,", 'button("javascript:void(0)",')
    report = copy.run()
    assert report.problems and all(p.file == template for p in report.problems)
    assert "links to 'javascript:void(0)'" in report.problems[0].message


def test_a_kind_without_template_or_sample(copy: Copy) -> None:
    (copy.templates / "review_service.mjml.j2").unlink()
    samples.path(copy.templates, "newsletter").unlink()
    report = copy.run()
    assert [(p.file, p.line) for p in report.problems] == [
        (copy.templates / "review_service.mjml.j2", 1),
        (samples.path(copy.templates, "newsletter"), 1),
        (samples.path(copy.templates, "newsletter"), 1),
    ]
    assert "no template for the kind 'review_service'" in report.problems[0].message
    assert report.summary() == "6 templates × 2 locales: 3 problems"  # noqa: RUF001


def test_problems_print_as_path_line_message(tmp_path: Path) -> None:
    problem = check.Problem(tmp_path / "templates" / "x.mjml.j2", 7, "broken")
    assert problem.format(tmp_path) == "templates/x.mjml.j2:7: broken"
    assert problem.format() == f"{tmp_path}/templates/x.mjml.j2:7: broken"


# -- the helpers on their own ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("<mjml><mj-body>\n</mj-body></mjml>", None, None),
        ("<mjml>\n<mj-spacer height='4px' />\n</mjml>", None, None),
        ("<mjml>\n<!-- <mj-text> -->\n</mjml>", None, None),
        ("<mjml>\n<mj-body>\n</mjml>", 2, "<mj-body> is not closed (</mjml> comes first)"),
        ("<mjml>\n</mj-text>\n</mjml>", 2, "</mj-text> closes nothing"),
        ("<mjml>\n<mj-body>", 2, "<mj-body> is never closed"),
        ("<mjml>\n<mj-txt>x</mj-txt>\n</mjml>", 2, "unknown MJML element <mj-txt>"),
        ('<mjml>\n<mj-text a="1>x</mj-text>\n</mjml>', 2, "no closing"),
        ("<mjml>\n<mj-text\n<mj-raw>", 2, "not finished with '>'"),
    ],
)
def test_structure_fault(source: str, line: int | None, message: str | None) -> None:
    fault = markup.structure_fault(source)
    if line is None:
        assert fault is None
    else:
        assert fault is not None and message is not None
        assert markup.line_at(source, fault.offset) == line
        assert message in fault.message


@pytest.mark.parametrize(
    ("html", "count"),
    [
        ('<img src="a.png" alt="">', 0),
        ('<img src="a.png" alt="A part">', 0),
        ('<img src="a.png">', 1),
        ('<mj-image src="a.png" />', 1),
        ('<IMG SRC="a.png" data-alt="x">', 1),
        ('<img\n  src="{{ item.image }}"\n  alt="{{ item.title }}" />', 0),
    ],
)
def test_images_without_alt(html: str, count: int) -> None:
    assert len(markup.images_without_alt(html)) == count


def test_trace_prefers_the_kind_file_and_the_line_whose_neighbours_match(tmp_path: Path) -> None:
    kind = tmp_path / "kind.mjml.j2"
    kind.write_text("<a>\n  <b>{{ x }}</b>\n</a>\n<c>\n</a>\n", encoding="utf-8")
    (tmp_path / "other.mjml.j2").write_text("<b>{{ y }}</b>\n", encoding="utf-8")
    produced = "<a>\n<b>1</b>\n</a>\n<c>\n</a>\n"
    assert sources.trace(tmp_path, kind, produced, 2) == (kind, 2)
    assert sources.trace(tmp_path, kind, produced, 5) == (kind, 5)
    assert sources.trace(tmp_path, kind, produced, 3) == (kind, 3)
    assert sources.trace(tmp_path, kind, "nothing like it", 1) is None


def test_sample_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(errors.TemplateError, match="no such sample file") as caught:
        samples.load(tmp_path / "nope.json")
    assert caught.value.file == str(tmp_path / "nope.json")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(errors.TemplateError, match="must be a JSON object"):
        samples.load(listed)


def test_send_context_leaves_out_what_the_engine_fills_in() -> None:
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, "shipping_notice"))
    assert set(samples.send_context(sample)) == {"order", "data"}
