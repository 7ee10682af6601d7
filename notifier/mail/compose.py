"""From a rendered mail to the bytes handed to SMTP, with every header the contract names.

Anything that reaches a header (names, subjects) loses its control
characters first, so no value can ever add a header of its own. The MIME
bytes are written directly (headers, then two quoted-printable parts) rather
than built as an ``EmailMessage`` and serialised: on the send path that
object model costs more than rendering the mail.

The body parts are written once, in the form the relay takes: raw UTF-8
(``8bit``) when it offered 8BITMIME, which saves quoted-printable's cost and
bulk, else quoted-printable. ``BodyEncoding`` carries what the transport
learnt at its first connect to the composers (in render processes too); a
message composed 8bit that meets a server without 8BITMIME after all is
re-encoded once by ``seven_bit``. DKIM-signed mail is always composed
quoted-printable: a signature covers the body, so re-encoding would break it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

from notifier import errors
from notifier.clock import Clock
from notifier.flows import kinds
from notifier.flows.kinds import Kind
from notifier.mail import dkim, verp
from notifier.mail.render import RenderedMail
from notifier.vocabulary import Category

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
MAX_HEADER_TEXT = 200
MAX_LINE = 998
"""Octets a line may hold before its CRLF (RFC 5321 section 4.5.3.1.6); longer ones go QP."""
_QUOTED = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
_EIGHT_BIT = b"Content-Transfer-Encoding: 8bit\r\n\r\n"
_BOUNDARY = re.compile(rb'boundary="([^"]+)"')
_WORD_MAX = 75
"""RFC 2047 §2: an encoded word is at most 75 characters, ``=?utf-8?q?`` and ``?=`` included."""
_FIRST_WORD_MAX = 76 - len("Reply-To: ")
"""The first word shares its line with the longest header name that carries encoded words."""
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
"""What the Q encoding leaves as is even in a display name (RFC 2047 §5 (3))."""
_WORDS = re.compile(r"\S+\s*")


class CrlfMessage(bytes):
    """Message bytes in which every line ends with CRLF, as ``Composer`` writes them.

    The transport sends such a message as it is (but for doubling leading
    dots) instead of first counting line ends to find bare CRs or LFs.
    """


class EightBitMessage(CrlfMessage):
    """A composed message with a body part in ``8bit``: MAIL needs ``BODY=8BITMIME``.

    Its lines are at most ``MAX_LINE`` octets; ``seven_bit`` makes the
    quoted-printable form for a server that does not offer 8BITMIME.
    """


@dataclass
class BodyEncoding:
    """Whether to write body parts 8bit: the relay offered 8BITMIME when last connected.

    Shared by the transport, which sets it after each EHLO, and the
    composers, which read it for every message; False (quoted-printable,
    which every server takes) until a connection says otherwise.
    """

    eight_bit: bool = False


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
    """For the kinds that ask for a reply; None: they reply to ``sender``."""
    list_id_domain: str
    list_name: str
    message_id_secret: bytes
    list_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Each category's name in the shop's language ("Nieuwsbrief"), for List-Id display names."""
    dkim_signer: dkim.DkimSigner | None = None
    """Signs as the sending domain (DKIM ``d=``); None sends unsigned."""
    verp_signer: verp.VerpSigner | None = None
    """Makes each envelope sender a VERP bounce address; None sends from the From address."""
    reply_to_kinds: Mapping[str, Address] = dataclasses.field(default_factory=dict)
    """A kind's own Reply-To (``NOTIFIER_REPLY_TO_KINDS``), over ``reply_to`` and the default."""

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
        bounce_domain: str | None = None,
        secret_keys: list[str] | None = None,
        list_labels: Mapping[str, str] | None = None,
        reply_to_kinds: Mapping[str, str] | None = None,
    ) -> Identity:
        """The identity from settings; raises ConfigurationError naming a bad variable.

        The DKIM key is read and checked here, once, so a bad key stops the
        process at startup rather than failing every send.
        """
        main = _address(sender, "NOTIFIER_FROM")
        unknown = sorted(set(reply_to_kinds or {}) - set(kinds.KINDS))
        if unknown:
            raise errors.ConfigurationError(
                f"NOTIFIER_REPLY_TO_KINDS: no kind {unknown[0]!r}; "
                f"expected one of {', '.join(kinds.KINDS)}",
                variable="NOTIFIER_REPLY_TO_KINDS",
            )
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
            verp_signer=verp.VerpSigner(secret_keys or [secret], bounce_domain)
            if bounce_domain
            else None,
            list_labels=dict(list_labels or {}),
            reply_to_kinds={
                kind: _address(address, "NOTIFIER_REPLY_TO_KINDS")
                for kind, address in (reply_to_kinds or {}).items()
            },
        )

    def reply_to_for(self, kind: Kind) -> Address | None:
        """The Reply-To of ``kind``'s mail: its own, else for a kind that asks for a reply
        ``NOTIFIER_REPLY_TO`` or the sender, else none (replies go to From)."""
        own = self.reply_to_kinds.get(kind.name)
        if own is not None:
            return own
        return (self.reply_to or self.sender) if kind.asks_reply else None

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
        self,
        identity: Identity,
        clock: Clock,
        signer: dkim.DkimSigner | None = None,
        encoding: BodyEncoding | None = None,
    ) -> None:
        self._identity = identity
        self._clock = clock
        self._signer = signer if signer is not None else identity.dkim_signer
        self.encoding = encoding or BodyEncoding()

    @property
    def verp_signer(self) -> verp.VerpSigner | None:
        """The signer of this composer's VERP senders; the bounce listener reads them with it."""
        return self._identity.verp_signer

    def compose(
        self, message_key: str, kind: Kind, mail: RenderedMail, headers: Headers
    ) -> Envelope:
        """The envelope for one outbox message.

        The Message-ID is derived from the outbox id, so a message sent twice
        (after a crash) carries the same id and mailbox providers can fold it.
        With a bounce domain the envelope sender is the VERP address naming
        the same digest; From and Reply-To stay as they are.
        """
        identity = self._identity
        sender = (
            identity.newsletter_sender if kind.category is Category.NEWSLETTER else identity.sender
        )
        digest = self.digest(message_key)
        message_id = f"<{digest}@{sender.domain or 'notifier.invalid'}>"
        subject = clean_header_text(mail.subject)
        if headers.test:
            subject = f"[TEST] {subject}"
        reply_to = identity.reply_to_for(kind)
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
        eight_bit = self.encoding.eight_bit and self._signer is None
        text, text_8bit = _part(boundary, "text/plain", mail.text, eight_bit)
        html, html_8bit = _part(boundary, "text/html", mail.html, eight_bit)
        data = b"".join(
            (
                "\r\n".join(lines).encode("ascii"),
                b"\r\n\r\n",
                text,
                html,
                f"--{boundary}--\r\n".encode("ascii"),
            )
        )
        if self._signer is not None:
            data = self._signer.sign(data)
        kind_of = EightBitMessage if text_8bit or html_8bit else CrlfMessage
        verp_signer = identity.verp_signer
        return Envelope(
            sender=verp_signer.address(digest) if verp_signer else sender.addr_spec,
            recipients=(headers.to_email,),
            data=kind_of(data),
            message_id=message_id,
        )

    def message_ids(self, digest: str) -> list[str]:
        """The Message-IDs a message with this digest may carry (main or newsletter sender)."""
        domains = {self._identity.sender.domain, self._identity.newsletter_sender.domain}
        return sorted(f"<{digest}@{domain or 'notifier.invalid'}>" for domain in domains)

    def digest(self, message_key: str) -> str:
        """The keyed hash of the outbox id in the Message-ID and the VERP address."""
        return hashlib.blake2b(
            message_key.encode(), key=self._identity.message_id_secret[:64], digest_size=16
        ).hexdigest()


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
    """Header text as it goes on the wire: as is when ASCII, else RFC 2047 encoded words.

    Each encoded word holds whole words (with the space after them, since
    readers drop the space between encoded words) and is at most 75
    characters; the words are folded onto lines of their own. Only a single
    word too long for one encoded word is split, between characters.
    """
    if text.isascii():
        return text
    encoded: list[str] = []
    chunk = ""
    for word in _WORDS.findall(text):
        room = _FIRST_WORD_MAX if not encoded else _WORD_MAX
        if len(_encoded_word(chunk + word)) <= room:
            chunk += word
            continue
        if chunk:
            encoded.append(_encoded_word(chunk))
            chunk, room = "", _WORD_MAX
        for char in word if len(_encoded_word(word)) > room else (word,):
            if chunk and len(_encoded_word(chunk + char)) > room:
                encoded.append(_encoded_word(chunk))
                chunk, room = "", _WORD_MAX
            chunk += char
    encoded.append(_encoded_word(chunk))
    return "\r\n ".join(encoded)


def _encoded_word(text: str) -> str:
    """``text`` as one encoded word, in Q (readable) or B (shorter for most scripts) encoding."""
    data = text.encode("utf-8")
    quoted = "".join(
        chr(byte) if byte in _Q_SAFE else "_" if byte == 0x20 else f"={byte:02X}" for byte in data
    )
    based = base64.b64encode(data).decode("ascii")
    return f"=?utf-8?q?{quoted}?=" if len(quoted) <= len(based) else f"=?utf-8?b?{based}?="


def _mailbox(name: str, address: str) -> str:
    """``Name <address>``, the name quoted or RFC 2047-encoded (and folded) as it needs."""
    if not name:
        return address
    if name.isascii():
        return formataddr((name, address))
    return f"{_unstructured(name)} <{address}>"


def _part(boundary: str, content_type: str, body: str, eight_bit: bool) -> tuple[bytes, bool]:
    """One body part, and whether it is 8bit: raw UTF-8 when ``eight_bit`` and no line is
    too long, else quoted-printable.

    Every line end becomes CRLF, a lone CR too: ``b2a_qp`` would keep it bare,
    and servers refuse bare CRs (they can smuggle a second message through).
    """
    raw = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    eight_bit = eight_bit and not _has_long_line(raw)
    if eight_bit:
        encoding, encoded = _EIGHT_BIT, raw
    else:
        encoding, encoded = _QUOTED, binascii.b2a_qp(raw, istext=True)
    part = b"".join(
        (
            f"--{boundary}\r\n".encode("ascii"),
            f'Content-Type: {content_type}; charset="utf-8"\r\n'.encode("ascii"),
            encoding,
            encoded.replace(b"\n", b"\r\n"),
            b"\r\n",
        )
    )
    return part, eight_bit


def _has_long_line(raw: bytes) -> bool:
    """Whether a line of ``raw`` (LF line ends) holds more than ``MAX_LINE`` octets.

    Any run of ``MAX_LINE + 1`` octets holds a whole aligned block of half
    that size, so only blocks without a line end are looked at more closely:
    a few dozen ``find`` calls a mail, where a regular expression or a split
    cost as much as the quoted-printable encoding it saves.
    """
    step = (MAX_LINE + 1) // 2
    find = raw.find
    for start in range(0, len(raw) - step + 1, step):
        if find(b"\n", start, start + step) >= 0:
            continue
        end = find(b"\n", start)
        if (len(raw) if end < 0 else end) - (raw.rfind(b"\n", 0, start) + 1) > MAX_LINE:
            return True
    return False


def seven_bit(message: bytes) -> CrlfMessage:
    """``message`` (as ``Composer`` wrote it) with each 8bit part made quoted-printable.

    Byte for byte what ``Composer`` writes when it composes quoted-printable
    in the first place: an 8bit part holds the same normalised UTF-8 lines
    that the quoted-printable path encodes. Parts are found by the message's
    own random boundary, which no body holds.
    """
    head_end = message.index(b"\r\n\r\n")
    found = _BOUNDARY.search(message, 0, head_end)
    if found is None:
        return CrlfMessage(message)
    delimiter = b"--" + found.group(1) + b"\r\n"
    closing = b"\r\n--" + found.group(1) + b"--\r\n"
    pieces = message.split(delimiter)
    out = [pieces[0]]
    for number, piece in enumerate(pieces[1:], start=2):
        tail = closing if number == len(pieces) else b"\r\n"
        headers, body = piece.split(b"\r\n\r\n", 1)
        if not headers.endswith(_EIGHT_BIT[:-4]):
            out.append(piece)
            continue
        raw = body[: len(body) - len(tail)].replace(b"\r\n", b"\n")
        encoded = binascii.b2a_qp(raw, istext=True).replace(b"\n", b"\r\n")
        out.append(headers[: -len(_EIGHT_BIT) + 4] + _QUOTED + encoded + tail)
    return CrlfMessage(delimiter.join(out))
