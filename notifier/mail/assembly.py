"""Everything that turns one outbox message into an envelope: context, links, render, compose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notifier import errors
from notifier.clock import Clock
from notifier.flows import kinds
from notifier.mail import campaign_letters, compose, failure, i18n, tokens
from notifier.mail.compose import BodyEncoding, Composer, Envelope, Headers, Identity
from notifier.mail.render import RenderedMail, Renderer
from notifier.recipient import Recipient
from notifier.vocabulary import Category, TemplateFault

if TYPE_CHECKING:
    from notifier.settings import Settings

CAMPAIGN_KIND = "newsletter"
"""The kind alike for a whole campaign: made once per locale (``campaign_letters``)."""


@dataclass(frozen=True)
class MailSettings:
    """The settings a mail is made from, as plain values: what a render process is handed.

    Not the whole ``Settings``: unpickling that would load pydantic and
    pydantic-settings into every render process, about 12 MB each.
    """

    shop_name: str
    company_name: str
    company_address: str
    company_kvk: str
    shop_url: str
    base_url: str
    review_products_url: str
    review_service_url: str
    from_: str
    from_newsletter: str | None
    reply_to: str | None
    reply_to_kinds: dict[str, str]
    list_id_domain: str
    bounce_domain: str | None
    dkim_selector: str | None
    dkim_domain: str | None
    dkim_key_file: Path | None
    templates_dir: Path
    locales_dir: Path
    default_locale: str
    timezone: str

    @classmethod
    def of(cls, settings: Settings) -> MailSettings:
        return cls(**{field.name: getattr(settings, field.name) for field in fields(cls)})


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
        settings: MailSettings,
        renderer: Renderer,
        composer: Composer,
        preference_tokens: tokens.Signer,
        confirm_tokens: tokens.Signer,
        *,
        campaign_blanks: bool = True,
    ) -> None:
        """``campaign_blanks`` False renders every newsletter per mail (what blanks are checked
        against)."""
        self._settings = settings
        self._renderer = renderer
        self._composer = composer
        self.preference_tokens = preference_tokens
        self.confirm_tokens = confirm_tokens
        self.campaign_letters = campaign_letters.CampaignLetters() if campaign_blanks else None
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
        settings: MailSettings,
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
        locale = self.locale_for(recipient)
        token = self._token(kind, recipient, locale)
        links = self.links(kind, recipient, locale, stored_context, token)
        mail = None
        if not test and kind.name == CAMPAIGN_KIND:
            mail = self._from_blank(kind, recipient, locale, stored_context, token)
        if mail is None:
            mail = self._render(message_key, kind, recipient, locale, links, stored_context)
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

    def locale_for(self, recipient: Recipient) -> str:
        """The locale ``recipient`` gets mail in: theirs, or the nearest the templates have."""
        return i18n.negotiate(
            recipient.locale, self._renderer.locales(), self._settings.default_locale
        )

    def _render(
        self,
        message_key: str,
        kind: kinds.Kind,
        recipient: Recipient,
        locale: str,
        links: dict[str, str],
        stored_context: dict[str, Any],
    ) -> RenderedMail:
        """The mail rendered from its template (Jinja or its compiled shape, mrml, plain text)."""
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
            return self._renderer.render(kind.name, recipient.locale, context)
        except errors.TemplateError:
            raise
        except Exception as exc:  # a filter or test choking on odd data: this message only
            raise errors.TemplateError(
                f"cannot render with this context: {exc!r}", reason=TemplateFault.CONTEXT
            ) from exc

    def _from_blank(
        self,
        kind: kinds.Kind,
        recipient: Recipient,
        locale: str,
        stored_context: dict[str, Any],
        token: str,
    ) -> RenderedMail | None:
        """A campaign mail filled into its campaign's blank; None: render this one itself."""
        letters = self.campaign_letters
        if letters is None:
            return None
        shape = campaign_letters.name_shape(recipient.first_name)
        if shape is False:
            letters.counts["per_mail"] += 1
            return None
        name = None if shape is None else campaign_letters.stand_in_name(shape)
        stand_in_token = campaign_letters.TOKEN * len(token)
        key = (
            letters.content_version(stored_context),
            recipient.locale,
            self._renderer.version(),
            shape,
            len(token),
        )
        other = campaign_letters.OTHER
        stand_in = Recipient(
            other, f"{other}@{other}.invalid", other, recipient.locale, first_name=name
        )

        def make() -> RenderedMail:
            links = self.links(kind, stand_in, locale, stored_context, stand_in_token)
            return self._render(other, kind, stand_in, locale, links, stored_context)

        try:
            blank = letters.blank(key, make, name, stand_in_token)
        except Exception:  # the recipient's own render says what fails, for this message
            blank = None
        if blank is None:
            letters.counts["per_mail"] += 1
            return None
        return letters.fill(blank, recipient.first_name, token)

    def _token(self, kind: kinds.Kind, recipient: Recipient, locale: str) -> str:
        """The preferences token of the preferences and unsubscribe links."""
        claims = tokens.Claims(recipient.id, kind.category, locale, recipient.token_generation)
        return self.preference_tokens.issue(claims)

    def links(
        self,
        kind: kinds.Kind,
        recipient: Recipient,
        locale: str,
        stored_context: dict[str, Any],
        token: str | None = None,
    ) -> dict[str, str]:
        """The mail's links; ``token`` is the preferences token, if already issued."""
        base = self._settings.base_url
        if token is None:
            token = self._token(kind, recipient, locale)
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
                tokens.Claims(recipient.id, Category.NEWSLETTER, locale, recipient.token_generation)
            )
            links["confirm_url"] = f"{base}/confirm/{confirm}"
        return links


def assemble_or_reason(
    assembler: Assembler,
    message_key: str,
    kind_name: str,
    recipient: Recipient,
    stored_context: dict[str, Any],
) -> Letter | failure.RenderFailure:
    """The letter, or why this one message cannot be made (so the rest of a batch goes on)."""
    try:
        return assembler.assemble(message_key, kind_name, recipient, stored_context)
    except Exception as exc:  # one message's failure must never stop the batch
        return failure.render_failure(exc, kind_name, assembler.locale_for(recipient))
