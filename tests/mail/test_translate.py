"""Translations that cannot change are compiled into the template; the rest are looked up."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from notifier.mail import i18n, translate

PREFERENCES = "E-mailvoorkeuren"
"""The Dutch catalog's translation of ``Email preferences``."""


@pytest.fixture(scope="module")
def environment() -> jinja2.Environment:
    """A Dutch environment set up as the renderer sets up its own."""
    catalogs = i18n.Catalogs(i18n.DEFAULT_LOCALES_DIR)
    environment = jinja2.Environment(
        extensions=["jinja2.ext.i18n"], autoescape=True, undefined=jinja2.StrictUndefined
    )
    environment.policies["ext.i18n.trimmed"] = True
    translations = catalogs.translations("nl")
    environment.install_gettext_translations(  # type: ignore[attr-defined]
        translations, newstyle=True
    )
    translate.TemplateGettext(translations, catalogs.msgids("nl")).install(environment)
    return environment


def render(environment: jinja2.Environment, source: str, **context: Any) -> str:
    return environment.from_string(source).render(context)


def test_constant_translations_are_compiled_into_the_template(
    environment: jinja2.Environment,
) -> None:
    source = (
        '{{ _("Email preferences") }}|{% trans %}Email\n  preferences{% endtrans %}'
        '|{{ gettext("Email preferences")|upper }}|{% set label = _("Email preferences") %}'
        '{{ label }}|{{ _("100%% <b>sure</b>") }}'
    )
    code = environment.compile(source, raw=True)
    assert "Email preferences" not in code
    assert render(environment, source) == (
        f"{PREFERENCES}|{PREFERENCES}|{PREFERENCES.upper()}|{PREFERENCES}|100% <b>sure</b>"
    )


def test_translations_of_data_or_with_variables_are_looked_up_when_rendered(
    environment: jinja2.Environment,
) -> None:
    source = (
        '{{ _(label) }}|{{ _("Email preferences") ~ name }}'
        '|{{ _("%(who)s: Email preferences", who=name) }}'
        '|{{ ngettext("%(num)s part", "%(num)s parts", 2) }}'
    )
    assert render(environment, source, label="Email preferences", name="<Zoë>") == (
        f"{PREFERENCES}|{PREFERENCES}&lt;Zoë&gt;|&lt;Zoë&gt;: Email preferences|2 parts"
    )


@pytest.mark.parametrize(
    "source",
    [
        '{% macro shout(_) %}{{ _("Email preferences") }}{% endmacro %}{{ shout(upper) }}',
        '{% set gettext = upper %}{{ gettext("Email preferences") }}',
        '{% for _ in [upper] %}{{ _("Email preferences") }}{% endfor %}',
    ],
)
def test_a_template_that_gives_the_name_another_meaning_keeps_it(
    environment: jinja2.Environment, source: str
) -> None:
    assert render(environment, source, upper=str.upper) == "EMAIL PREFERENCES"


def test_a_translation_that_needs_variables_fails_when_rendered(
    environment: jinja2.Environment,
) -> None:
    template = environment.from_string('line one\n{{ _("Hello %(name)s") }}')
    with pytest.raises(KeyError, match="name"):
        template.render()
