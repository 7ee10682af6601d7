"""Tests for notifier.mail.assembly: a message that cannot be made is a failure, not a raise."""

from __future__ import annotations

from notifier.mail import assembly, failure
from notifier.recipient import Recipient
from notifier.service import Notifier
from notifier.vocabulary import TemplateFault


def test_a_failure_names_the_kind_and_the_locale_the_mail_was_made_in(engine: Notifier) -> None:
    """A Belgian Dutch customer gets the ``nl`` templates, so an ``nl`` template failed."""
    recipient = Recipient("C42", "jan@example.nl", "Jan de Vries", "nl-BE")
    made = assembly.assemble_or_reason(
        engine.assembler,
        "k-1",
        "order_confirmation",
        recipient,
        {"order": "not an order", "data": {}},
    )
    assert isinstance(made, failure.RenderFailure)
    assert (made.reason, made.kind, made.locale) == (
        TemplateFault.UNDEFINED,
        "order_confirmation",
        "nl",
    )
    assert made.missing == "order.number"
