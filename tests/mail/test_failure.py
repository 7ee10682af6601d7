"""Tests for notifier.mail.failure: a render failure's log form names the place, never the data."""

from __future__ import annotations

import jinja2
import pytest

from notifier import errors
from notifier.mail import failure
from notifier.vocabulary import TemplateFault


def raised(outer: Exception, cause: Exception | None) -> Exception:
    """``outer``, raised ``from cause`` as the renderer does."""
    try:
        raise outer from cause
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "summary"),
    [
        (
            raised(
                errors.TemplateError("UndefinedError: 'x' is undefined", "a.mjml.j2", 3),
                jinja2.UndefinedError("'shipping_address' is undefined"),
            ),
            "where=a.mjml.j2:3 error=UndefinedError missing=shipping_address",
        ),
        (
            raised(
                errors.TemplateError("UndefinedError", "partials/address.mjml.j2", 7),
                jinja2.UndefinedError("'dict object' has no attribute 'city'"),
            ),
            "where=partials/address.mjml.j2:7 error=UndefinedError missing=city",
        ),
        (
            raised(
                errors.TemplateError("ValueError: invalid literal: 'Jan de Vries'", "b.mjml.j2"),
                ValueError("invalid literal: 'Jan de Vries'"),
            ),
            "where=b.mjml.j2 error=ValueError",
        ),
        (
            raised(
                errors.TemplateError("mjml: bad tag (<mj-text>Jan</mj-text>)", "c.mjml.j2"),
                RuntimeError("Jan"),
            ),
            "where=c.mjml.j2 error=RuntimeError",
        ),
        (
            errors.TemplateError("the subject is empty", "d.mjml.j2"),
            "where=d.mjml.j2 error=TemplateError",
        ),
        (
            errors.ConfigurationError("not an email address: 'jan@example.nl'"),
            "error=ConfigurationError",
        ),
        (KeyError("jan@example.nl"), "error=KeyError"),
    ],
)
def test_the_summary_names_where_and_what_and_keeps_the_data_to_the_detail(
    exc: Exception, summary: str
) -> None:
    unrendered = failure.render_failure(exc, "order_confirmation", "nl")
    assert unrendered.summary == summary
    assert unrendered.detail.startswith("render: ")
    assert "Jan" not in unrendered.summary and "@" not in unrendered.summary
    assert (unrendered.kind, unrendered.locale) == ("order_confirmation", "nl")
    expected = exc.reason if isinstance(exc, errors.TemplateError) else TemplateFault.CONTEXT
    assert unrendered.reason is expected
