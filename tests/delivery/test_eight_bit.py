"""8BITMIME: raw UTF-8 bodies when the relay offers it, quoted-printable when it does not."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from notifier.clock import FrozenClock
from notifier.delivery.transport import SmtpConfig, SmtpTransport
from notifier.flows import kinds
from notifier.mail import compose, dkim
from notifier.mail.compose import BodyEncoding, Composer, Headers
from tests.mails import NOW, identity, rendered
from tests.smtpd import ClosingController, RecordingHandler, free_port

_BOUNDARY = re.compile(rb'boundary="([^"]+)"')


class Handler(RecordingHandler):
    """Records MAIL's options too; ``eight_bit`` False takes 8BITMIME out of the EHLO reply."""

    def __init__(self, eight_bit: bool) -> None:
        super().__init__()
        self.eight_bit = eight_bit
        self.mail_options: list[list[str]] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [r for r in responses if self.eight_bit or "8BITMIME" not in r]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mail_options.append(list(envelope.mail_options))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(params=[True, False], ids=["8bitmime", "no-8bitmime"])
def server(request: pytest.FixtureRequest) -> Any:
    handler = Handler(eight_bit=request.param)
    controller = ClosingController(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def envelope(eight_bit: bool, html: str | None = None) -> compose.Envelope:
    composer = Composer(identity(), FrozenClock(NOW), encoding=BodyEncoding(eight_bit))
    mail = rendered()
    if html is not None:
        mail = type(mail)(mail.subject, mail.preheader, html, mail.text, mail.locale)
    return composer.compose(
        "m-1", kinds.get("order_confirmation"), mail, Headers("jan@example.nl", "Jan")
    )


def same_boundary(data: bytes, like: bytes) -> bytes:
    """``data`` with its random MIME boundary replaced by ``like``'s."""
    mine = _BOUNDARY.search(data)
    theirs = _BOUNDARY.search(like)
    assert mine is not None and theirs is not None
    return data.replace(mine.group(1), theirs.group(1))


def parsed(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def bodies(data: bytes) -> list[str]:
    return [str(part.get_content()) for part in parsed(data).iter_parts()]


def test_eight_bit_parts_carry_raw_utf8_and_read_as_the_quoted_printable_ones() -> None:
    eight, quoted = envelope(True), envelope(False)
    assert isinstance(eight.data, compose.EightBitMessage)
    assert not isinstance(quoted.data, compose.EightBitMessage)
    raw = bytes(eight.data)
    assert b"Content-Transfer-Encoding: 8bit" in raw
    assert b"quoted-printable" not in raw
    assert "Jöns, € 123,45".encode() in raw
    assert bodies(eight.data) == bodies(quoted.data)
    assert all(len(line) <= compose.MAX_LINE for line in eight.data.split(b"\r\n"))


def test_seven_bit_is_byte_for_byte_the_quoted_printable_composition() -> None:
    eight, quoted = envelope(True), envelope(False)
    assert compose.seven_bit(same_boundary(eight.data, quoted.data)) == quoted.data


def test_a_part_with_a_line_over_998_octets_stays_quoted_printable() -> None:
    long_html = "<p>" + "é" * 600 + "</p>"  # 1,207 octets on one line
    eight = envelope(True, html=long_html)
    html_part = eight.data.split(b"text/html", 1)[1]
    assert b"quoted-printable" in html_part.split(b"\r\n\r\n", 1)[0]
    assert isinstance(eight.data, compose.EightBitMessage)  # the text part is still 8bit
    assert all(len(line) <= compose.MAX_LINE for line in eight.data.split(b"\r\n"))
    quoted = envelope(False, html=long_html)
    assert compose.seven_bit(same_boundary(eight.data, quoted.data)) == quoted.data


def test_signed_mail_is_quoted_printable_even_when_the_relay_takes_8bit(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = dkim.configure(selector="s1", domain="winparts.example", key_file=key_file)
    composer = Composer(identity(), FrozenClock(NOW), signer, BodyEncoding(eight_bit=True))
    data = composer.compose(
        "m-1", kinds.get("order_confirmation"), rendered(), Headers("jan@example.nl", "Jan")
    ).data
    assert data.startswith(b"DKIM-Signature:")
    assert not isinstance(data, compose.EightBitMessage)
    assert b"Content-Transfer-Encoding: 8bit" not in data


async def test_the_transport_learns_8bitmime_and_sends_what_the_server_takes(
    server: tuple[Handler, int],
) -> None:
    handler, port = server
    learnt = BodyEncoding()
    transport = SmtpTransport(SmtpConfig("127.0.0.1", port, tls="none", timeout=5), learnt)
    eight, quoted = envelope(True), envelope(False)
    try:
        await transport.send(eight.sender, eight.recipients, eight.data)
    finally:
        await transport.close()
    assert learnt.eight_bit is handler.eight_bit
    [received] = handler.received
    if handler.eight_bit:
        assert "BODY=8BITMIME" in handler.mail_options[0]
        assert received.data == eight.data
    else:
        assert not any(o.startswith("BODY") for o in handler.mail_options[0])
        assert received.data == compose.seven_bit(eight.data)
        assert same_boundary(received.data, quoted.data) == quoted.data
    assert bodies(received.data) == bodies(quoted.data)


@given(st.lists(st.integers(min_value=0, max_value=2100), min_size=1, max_size=6))
def test_the_long_line_check_agrees_with_splitting(lengths: list[int]) -> None:
    raw = b"\n".join(b"x" * length for length in lengths)
    assert compose._has_long_line(raw) == (max(lengths) > compose.MAX_LINE)
