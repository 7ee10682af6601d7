"""A rendered mail and a sender identity as the composer takes them, for MIME tests."""

from __future__ import annotations

from datetime import UTC, datetime

from notifier.mail.compose import (
    Identity,
)
from notifier.mail.render import RenderedMail

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://notifier.test/unsubscribe/tok.en.sig"


def identity(
    *,
    reply_to: str | None = None,
    newsletter: str | None = "Winparts Nieuws <nieuws@news.winparts.example>",
    reply_to_kinds: dict[str, str] | None = None,
) -> Identity:
    return Identity.parse(
        sender="Winparts <service@winparts.example>",
        newsletter_sender=newsletter,
        reply_to=reply_to,
        reply_to_kinds=reply_to_kinds,
        list_id_domain="winparts.example",
        list_name="Winparts",
        secret="test-secret-key",
    )


def rendered(
    subject: str = "Bedankt voor je bestelling WP-1001", locale: str = "nl"
) -> RenderedMail:
    return RenderedMail(
        subject=subject,
        preheader="We gaan ermee aan de slag",
        html=f'<!doctype html><html lang="{locale[:2]}"><body><p>Hallo Jöns, € 123,45</p></body>'
        "</html>",
        text="Hallo Jöns, € 123,45\n\nAfmelden: " + UNSUBSCRIBE,
        locale=locale,
    )
