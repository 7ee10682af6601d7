"""Everything that turns one outbox message into an envelope: context, links, render, compose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Protocol

from notifier import errors
from notifier.clock import Clock
from notifier.flows import kinds
from notifier.mail import compose, failure, i18n, tokens
from notifier.mail.compose import BodyEncoding, Composer, Envelope, Headers, Identity
from notifier.mail.render import Renderer
from notifier.settings import Settings
from notifier.vocabulary import Category, TemplateFault


class Recipient(Protocol):
    """Whom a message goes to, as the store hands it over."""

    @property
    def id(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def locale(self) -> str: ...
    @property
    def first_name(self) -> str | None: ...


@dataclass(frozen=True)
class Letter:
    envelope: Envelope
    locale: str
    html_size: int = 0
    """Bytes of the HTML part as rendered (before MIME encoding), for the size guard."""


class Assembler:
    """Builds the template context and links, renders, and composes the MIME message."""

    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        composer: Composer,
        preference_tokens: tokens.Signer,
        confirm_tokens: tokens.Signer,
    ) -> None:
        self._settings = settings
        self._renderer = renderer
        self._composer = composer
        self.preference_tokens = preference_tokens
        self.confirm_tokens = confirm_tokens
        self._shop = {
            "name": settings.shop_name,
            "legal_name": settings.company_name,
            "address": settings.company_address,
            "kvk": settings.company_kvk,
            "shop_url": settings.shop_url,
            "support_email": parseaddr(settings.reply_to or settings.from_)[1],
        }

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        secret_keys: list[str],
        clock: Clock,
        encoding: BodyEncoding | None = None,
    ) -> Assembler:
        """The assembler the settings describe; also how render worker processes build theirs.

        ``encoding`` is shared with the transport, which learns whether the relay takes 8bit.
        """
        catalogs = i18n.Catalogs(settings.locales_dir)
        words = catalogs.translations(settings.default_locale)
        identity = Identity.parse(
            sender=settings.from_,
            newsletter_sender=settings.from_newsletter,
            reply_to=settings.reply_to,
            list_id_domain=settings.list_id_domain,
            list_name=settings.shop_name,
            secret=secret_keys[0],
            dkim_selector=settings.dkim_selector,
            dkim_domain=settings.dkim_domain,
            dkim_key_file=settings.dkim_key_file,
            bounce_domain=settings.bounce_domain,
            secret_keys=secret_keys,
            list_labels={
                category: words.gettext(label) for category, label in compose.LIST_LABELS.items()
            },
            reply_to_kinds=settings.reply_to_kinds,
        )
        renderer = Renderer(
            settings.templates_dir, settings.locales_dir, settings.default_locale, settings.timezone
        )
        return cls(
            settings,
            renderer,
            Composer(identity, clock, encoding=encoding),
            tokens.Signer(secret_keys, tokens.PREFERENCES),
            tokens.Signer(secret_keys, tokens.CONFIRM),
        )

    @property
    def composer(self) -> Composer:
        return self._composer

    @property
    def renderer(self) -> Renderer:
        return self._renderer

    def assemble(
        self,
        message_key: str,
        kind_name: str,
        recipient: Recipient,
        stored_context: dict[str, Any],
        *,
        test: bool = False,
    ) -> Letter:
        """Render and compose one message; ``TemplateError`` if its template cannot render."""
        kind = kinds.get(kind_name)
        locale = i18n.negotiate(
            recipient.locale, self._renderer.locales(), self._settings.default_locale
        )
        links = self.links(kind, recipient, locale, stored_context)
        context = {
            **stored_context,
            "customer": {
                "id": recipient.id,
                "name": recipient.name,
                "first_name": recipient.first_name,
                "email": recipient.email,
                "locale": locale,
            },
            "shop": self._shop,
            "links": links,
            "message": {
                "id": message_key,
                "kind": kind.name,
                "category": kind.category,
                "unsubscribable": kind.unsubscribable,
            },
        }
        try:
            mail = self._renderer.render(kind.name, recipient.locale, context)
        except errors.TemplateError:
            raise
        except Exception as exc:  # a filter or test choking on odd data: this message only
            raise errors.TemplateError(
                f"cannot render with this context: {exc!r}", reason=TemplateFault.CONTEXT
            ) from exc
        envelope = self._composer.compose(
            message_key,
            kind,
            mail,
            Headers(
                to_email=recipient.email,
                to_name=recipient.name,
                unsubscribe_url=links.get("unsubscribe_url"),
                test=test,
            ),
        )
        return Letter(envelope, mail.locale, len(mail.html.encode()))

    def links(
        self, kind: kinds.Kind, recipient: Recipient, locale: str, stored_context: dict[str, Any]
    ) -> dict[str, str]:
        base = self._settings.base_url
        claims = tokens.Claims(recipient.id, kind.category, locale, _generation(recipient))
        token = self.preference_tokens.issue(claims)
        links = {
            "preferences_url": f"{base}/preferences/{token}",
            "shop_url": self._settings.shop_url,
        }
        if kind.unsubscribable:
            links["unsubscribe_url"] = f"{base}/unsubscribe/{token}"
        order = stored_context.get("order")
        order_number = str(order.get("number") or "") if isinstance(order, Mapping) else ""
        if kind.name == "review_products":
            links["review_url"] = self._settings.review_products_url.format(
                order_number=order_number
            )
        elif kind.name == "review_service":
            links["review_url"] = self._settings.review_service_url.format(
                order_number=order_number
            )
        elif kind.name == "newsletter_confirm":
            confirm = self.confirm_tokens.issue(
                tokens.Claims(recipient.id, Category.NEWSLETTER, locale, _generation(recipient))
            )
            links["confirm_url"] = f"{base}/confirm/{confirm}"
        return links


def assemble_or_reason(
    assembler: Assembler,
    message_key: str,
    kind_name: str,
    recipient: Recipient,
    stored_context: dict[str, Any],
) -> Letter | failure.Unrendered:
    """The letter, or why this one message cannot be made (so the rest of a batch goes on)."""
    try:
        return assembler.assemble(message_key, kind_name, recipient, stored_context)
    except Exception as exc:  # one message's failure must never stop the batch
        return failure.unrendered(exc)


def _generation(recipient: Recipient) -> str:
    """The recipient's token generation (``store.customers.Recipient``); none for a sample."""
    generation = getattr(recipient, "token_generation", "")
    return generation if isinstance(generation, str) else ""
