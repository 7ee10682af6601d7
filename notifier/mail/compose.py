"""From a rendered mail to the bytes handed to SMTP, with every header the contract names.

Anything that reaches a header (names, subjects) loses its control
characters first, so no value can ever add a header of its own. The MIME
bytes are written directly (headers, then two quoted-printable parts) rather
than built as an ``EmailMessage`` and serialised: on the send path that
object model costs more than rendering the mail.
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

from notifier import errors
from notifier.clock import Clock
from notifier.flows.kinds import Kind
from notifier.mail import dkim
from notifier.mail.render import RenderedMail
from notifier.vocabulary import Category

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
MAX_HEADER_TEXT = 200


class CrlfMessage(bytes):
    """Message bytes in which every line ends with CRLF, as ``Composer`` writes them.

    The transport sends such a message as it is (but for doubling leading
    dots) instead of first counting line ends to find bare CRs or LFs.
    """


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
    list_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Each category's name in the shop's language ("Nieuwsbrief"), for List-Id display names."""
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
        list_labels: Mapping[str, str] | None = None,
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
            list_labels=dict(list_labels or {}),
        )


    def list_display_name(self, category: str) -> str:
        """``Winparts Nieuwsbrief``: the shop and the category as its customers call it."""
        label = self.list_labels.get(category, category)
        return clean_header_text(f"{self.list_name} {label}")


LIST_LABELS = {
    Category.ORDER_UPDATES: "Order updates",
    Category.REVIEWS: "Review requests",
    Category.NEWSLETTER: "Newsletter",
    Category.SERVICE: "Service messages",
}
"""The msgids of the categories' names (the preferences page's, so already translated)."""


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
        sender = (
            identity.newsletter_sender if kind.category is Category.NEWSLETTER else identity.sender
        )
        message_id = self.message_id(message_key, sender.domain)
        subject = clean_header_text(mail.subject)
        if headers.test:
            subject = f"[TEST] {subject}"
        reply_to = identity.reply_to or (
            identity.sender if kind.name == "verification_question" else None
        )
        lines = [
            f"Message-ID: {message_id}",
            f"Date: {format_datetime(self._clock.now())}",
            f"From: {_mailbox(sender.display_name, sender.addr_spec)}",
            f"To: {_mailbox(clean_header_text(headers.to_name or ''), headers.to_email)}",
            f"Subject: {_unstructured(subject)}",
        ]
        if reply_to is not None:
            lines.append(f"Reply-To: {_mailbox(reply_to.display_name, reply_to.addr_spec)}")
        if kind.unsubscribable:
            lines.append(
                f"List-Id: {_unstructured(identity.list_display_name(kind.category))} "
                f"<{kind.category}.{identity.list_id_domain}>"
            )
            if headers.unsubscribe_url:
                lines.append(f"List-Unsubscribe: <{headers.unsubscribe_url}>")
                lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        if headers.test:
            lines.append("X-Notifier-Test: yes")
        boundary = f"=_{secrets.token_hex(16)}"
        lines += [
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            f"Content-Language: {mail.locale.replace('_', '-')}",
        ]
        data = b"".join(
            (
                "\r\n".join(lines).encode("ascii"),
                b"\r\n\r\n",
                _part(boundary, "text/plain", mail.text),
                _part(boundary, "text/html", mail.html),
                f"--{boundary}--\r\n".encode("ascii"),
            )
        )
        if self._signer is not None:
            data = self._signer.sign(data)
        return Envelope(
            sender=sender.addr_spec,
            recipients=(headers.to_email,),
            data=CrlfMessage(data),
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


def _unstructured(text: str) -> str:
    """Header text as it goes on the wire: as is when ASCII, else RFC 2047 encoded words."""
    if text.isascii():
        return text
    return Header(text, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _mailbox(name: str, address: str) -> str:
    """``Name <address>``, the name quoted or RFC 2047-encoded (and folded) as it needs."""
    if not name:
        return address
    if name.isascii():
        return formataddr((name, address))
    return f"{_unstructured(name)} <{address}>"


def _part(boundary: str, content_type: str, body: str) -> bytes:
    """One body part, quoted-printable (7-bit safe, lines under 77 characters).

    Every line end becomes CRLF, a lone CR too: ``b2a_qp`` would keep it bare,
    and servers refuse bare CRs (they can smuggle a second message through).
    """
    lines = body.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(lines.encode("utf-8"), istext=True)
    return b"".join(
        (
            f"--{boundary}\r\n".encode("ascii"),
            f'Content-Type: {content_type}; charset="utf-8"\r\n'.encode("ascii"),
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            encoded.replace(b"\n", b"\r\n"),
            b"\r\n",
        )
    )
