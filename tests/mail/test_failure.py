"""Tests for notifier.mail.failure: a render failure's log form names the place, never the data."""

from __future__ import annotations

import pickle

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
    ("exc", "summary", "reason"),
    [
        (
            raised(
                errors.TemplateError(
                    "UndefinedError: 'x' is undefined",
                    "a.mjml.j2",
                    3,
                    reason=TemplateFault.UNDEFINED,
                ),
                jinja2.UndefinedError("'shipping_address' is undefined"),
            ),
            "where=a.mjml.j2:3 error=UndefinedError missing=shipping_address",
            TemplateFault.UNDEFINED,
        ),
        (
            raised(
                errors.TemplateError(
                    "UndefinedError", "partials/address.mjml.j2", 7, reason=TemplateFault.UNDEFINED
                ),
                jinja2.UndefinedError("'dict object' has no attribute 'city'"),
            ),
            "where=partials/address.mjml.j2:7 error=UndefinedError missing=city",
            TemplateFault.UNDEFINED,
        ),
        (
            raised(
                errors.TemplateError("ValueError: invalid literal: 'Jan de Vries'", "b.mjml.j2"),
                ValueError("invalid literal: 'Jan de Vries'"),
            ),
            "where=b.mjml.j2 error=ValueError",
            TemplateFault.RUNTIME,
        ),
        (
            raised(
                errors.TemplateError(
                    "mjml: bad tag (<mj-text>Jan</mj-text>)", "c.mjml.j2", reason=TemplateFault.MJML
                ),
                RuntimeError("Jan"),
            ),
            "where=c.mjml.j2 error=RuntimeError",
            TemplateFault.MJML,
        ),
        (
            errors.TemplateError(
                "the subject is empty", "d.mjml.j2", reason=TemplateFault.EMPTY_SUBJECT
            ),
            "where=d.mjml.j2 error=TemplateError",
            TemplateFault.EMPTY_SUBJECT,
        ),
        (
            errors.ConfigurationError("not an email address: 'jan@example.nl'"),
            "error=ConfigurationError",
            TemplateFault.CONTEXT,
        ),
        (KeyError("jan@example.nl"), "error=KeyError", TemplateFault.CONTEXT),
    ],
)
def test_the_summary_names_where_and_what_and_keeps_the_data_to_the_detail(
    exc: Exception, summary: str, reason: TemplateFault
) -> None:
    cause = failure.render_failure(exc, "order_confirmation", "nl")
    assert cause.summary == summary
    assert cause.detail.startswith("render: ")
    assert "Jan" not in cause.summary and "@" not in cause.summary
    assert (cause.reason, cause.kind, cause.locale) == (reason, "order_confirmation", "nl")


def test_a_failure_survives_the_trip_back_from_a_render_process() -> None:
    exc = raised(
        errors.TemplateError("UndefinedError", "a.mjml.j2", 3, reason=TemplateFault.UNDEFINED),
        jinja2.UndefinedError("'city' is undefined"),
    )
    cause = failure.render_failure(exc, "order_shipped", "de")
    assert pickle.loads(pickle.dumps(cause)) == cause
