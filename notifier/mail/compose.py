"""From a rendered mail to the bytes handed to SMTP, with every header the contract names.

Anything that reaches a header (names, subjects) loses its control
characters first, so no value can ever add a header of its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path

from notifier import errors
from notifier.clock import Clock
from notifier.flows.kinds import Kind
from notifier.mail import dkim
from notifier.mail.render import RenderedMail

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
MAX_HEADER_TEXT = 200


@dataclass(frozen=True)
class Envelope:
    """What the transport needs: the SMTP sender, recipients and the message bytes."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str


@dataclass(frozen=True)
class Headers:
    """Per-message header inputs that do not come from the template."""

    to_email: str
    to_name: str | None
    unsubscribe_url: str | None = None
    test: bool = False


@dataclass(frozen=True)
class Identity:
    """The sender side of every mail, parsed once from the settings."""

    sender: Address
    newsletter_sender: Address
    reply_to: Address | None
    list_id_domain: str
    list_name: str
    message_id_secret: bytes
    dkim_signer: dkim.DkimSigner | None = None
    """Signs as the sending domain (DKIM ``d=``); None sends unsigned."""

    @classmethod
    def parse(
        cls,
        *,
        sender: str,
        newsletter_sender: str | None,
        reply_to: str | None,
        list_id_domain: str,
        list_name: str,
        secret: str,
        dkim_selector: str | None = None,
        dkim_domain: str | None = None,
        dkim_key_file: Path | None = None,
    ) -> Identity:
        """The identity from settings; raises ConfigurationError naming a bad variable.

        The DKIM key is read and checked here, once, so a bad key stops the
        process at startup rather than failing every send.
        """
        main = _address(sender, "NOTIFIER_FROM")
        signer = dkim.configure(selector=dkim_selector, domain=dkim_domain, key_file=dkim_key_file)
        return cls(
            sender=main,
            newsletter_sender=_address(newsletter_sender, "NOTIFIER_FROM_NEWSLETTER")
            if newsletter_sender
            else main,
            reply_to=_address(reply_to, "NOTIFIER_REPLY_TO") if reply_to else None,
            list_id_domain=list_id_domain,
            list_name=list_name,
            message_id_secret=secret.encode(),
            dkim_signer=signer,
        )


class Composer:
    """Builds ``multipart/alternative`` messages (plain text first, HTML preferred).

    With a ``signer`` (by default the identity's) every message leaves
    DKIM-signed; signing is the last step, over the exact bytes handed to SMTP.
    """

    def __init__(
        self, identity: Identity, clock: Clock, signer: dkim.DkimSigner | None = None
    ) -> None:
        self._identity = identity
        self._clock = clock
        self._signer = signer if signer is not None else identity.dkim_signer

    def compose(
        self, message_key: str, kind: Kind, mail: RenderedMail, headers: Headers
    ) -> Envelope:
        """The envelope for one outbox message.

        The Message-ID is derived from the outbox id, so a message sent twice
        (after a crash) carries the same id and mailbox providers can fold it.
        """
        identity = self._identity
        sender = identity.newsletter_sender if kind.category == "newsletter" else identity.sender
        message_id = self.message_id(message_key, sender.domain)
        subject = clean_header_text(mail.subject)
        if headers.test:
            subject = f"[TEST] {subject}"
        message = EmailMessage(policy=SMTP)
        message["Message-ID"] = message_id
        message["Date"] = format_datetime(self._clock.now())
        message["From"] = sender
        message["To"] = Address(
            display_name=clean_header_text(headers.to_name or ""), addr_spec=headers.to_email
        )
        message["Subject"] = subject
        reply_to = identity.reply_to or (
            identity.sender if kind.name == "verification_question" else None
        )
        if reply_to is not None:
            message["Reply-To"] = reply_to
        if kind.unsubscribable:
            message["List-Id"] = (
                f"{identity.list_name} {kind.category} <{kind.category}.{identity.list_id_domain}>"
            )
            if headers.unsubscribe_url:
                message["List-Unsubscribe"] = f"<{headers.unsubscribe_url}>"
                message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if headers.test:
            message["X-Notifier-Test"] = "yes"
        message.set_content(mail.text, cte="quoted-printable")
        message.add_alternative(mail.html, subtype="html", cte="quoted-printable")
        # After the parts: set_content() clears every Content-* header of the message.
        message["Content-Language"] = mail.locale.replace("_", "-")
        data = message.as_bytes()
        if self._signer is not None:
            data = self._signer.sign(data)
        return Envelope(
            sender=sender.addr_spec,
            recipients=(headers.to_email,),
            data=data,
            message_id=message_id,
        )

    def message_id(self, message_key: str, domain: str) -> str:
        digest = hashlib.blake2b(
            message_key.encode(), key=self._identity.message_id_secret[:64], digest_size=16
        ).hexdigest()
        return f"<{digest}@{domain or 'notifier.invalid'}>"


def clean_header_text(value: str) -> str:
    """One line of at most ``MAX_HEADER_TEXT`` characters without control characters.

    ``=?`` is broken up so a value can never pose as an RFC 2047 encoded word
    and decode, at the reader, into header syntax of its own.
    """
    single = _CONTROL.sub(" ", value).replace("=?", "= ?").strip()
    single = re.sub(r"\s{2,}", " ", single)
    return single[:MAX_HEADER_TEXT]


def _address(value: str, variable: str) -> Address:
    name, addr = parseaddr(value)
    if "@" not in addr:
        raise errors.ConfigurationError(f"not an email address: {value!r}", variable=variable)
    user, domain = addr.rsplit("@", 1)
    return Address(display_name=clean_header_text(name), username=user, domain=domain)
