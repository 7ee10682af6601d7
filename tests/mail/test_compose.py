"""The MIME message a customer receives: every header the contract names, and no injected ones."""

from __future__ import annotations

import re
from email import policy
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from notifier import errors
from notifier.clock import FrozenClock
from notifier.flows import kinds
from notifier.mail.compose import (
    Composer,
    CrlfMessage,
    Envelope,
    Headers,
    Identity,
    clean_header_text,
)
from notifier.mail.render import RenderedMail
from tests.mails import NOW, UNSUBSCRIBE, identity, rendered

BASE_HEADERS = {
    "Message-ID", "Date", "From", "To", "Subject", "MIME-Version", "Content-Type",
    "Content-Language",
}  # fmt: skip
LIST_HEADERS = {"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"}


@pytest.fixture
def composer() -> Composer:
    return Composer(identity(), FrozenClock(NOW))


def compose(
    composer: Composer,
    kind: str = "order_confirmation",
    *,
    name: str | None = "Jan de Vries",
    subject: str = "Bedankt voor je bestelling WP-1001",
    key: str = "msg_1",
    locale: str = "nl",
    unsubscribe_url: str | None = UNSUBSCRIBE,
    test: bool = False,
) -> tuple[Envelope, EmailMessage]:
    envelope = composer.compose(
        key,
        kinds.get(kind),
        rendered(subject, locale),
        Headers(
            to_email="jan@example.nl", to_name=name, unsubscribe_url=unsubscribe_url, test=test
        ),
    )
    return envelope, parse(envelope.data)


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def header_names(message: EmailMessage) -> set[str]:
    names = list(message.keys())
    assert len(names) == len(set(names)), f"a header appears twice: {names}"
    return set(names)


def test_every_header_the_contract_names(composer: Composer) -> None:
    envelope, message = compose(composer)
    assert header_names(message) == BASE_HEADERS | LIST_HEADERS
    assert message["Message-ID"] == envelope.message_id
    assert envelope.message_id.startswith("<") and envelope.message_id.endswith(
        "@winparts.example>"
    )
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["From"] == "Winparts <service@winparts.example>"
    assert message["To"] == "Jan de Vries <jan@example.nl>"
    assert message["Subject"] == "Bedankt voor je bestelling WP-1001"
    assert message["Content-Language"] == "nl"
    assert envelope.sender == "service@winparts.example"
    assert envelope.recipients == ("jan@example.nl",)
    for line in envelope.data.split(b"\r\n"):
        assert len(line) <= 998  # RFC 5322's hard limit
        assert line.isascii()  # no SMTPUTF8 needed: non-ASCII is encoded


def test_multipart_alternative_text_first_then_html(composer: Composer) -> None:
    _, message = compose(composer)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    text, html = (part.get_content() for part in parts)
    assert isinstance(text, str) and isinstance(html, str)
    assert "Hallo Jöns, € 123,45" in text and UNSUBSCRIBE in text
    assert '<html lang="nl">' in html and "€ 123,45" in html


@pytest.mark.parametrize(
    "name",
    ["Jöns Åberg", "Łukasz Żółć", "José Müller-Lüdenscheidt", "王小明", "Zoë 😀", "Jan, de Vries"],
)
def test_a_non_ascii_name_is_encoded_and_decodes_back(composer: Composer, name: str) -> None:
    envelope, message = compose(composer, name=name)
    raw_to = next(line for line in envelope.data.split(b"\r\n") if line.startswith(b"To:"))
    if not name.isascii():
        assert b"=?utf-8?" in raw_to  # RFC 2047 encoded word
    [address] = message["To"].addresses
    assert address.display_name == name
    assert address.addr_spec == "jan@example.nl"


@pytest.mark.parametrize("subject", ["Über je bestelling €", "Ваш заказ", "注文 WP-1001 😀"])
def test_a_non_ascii_subject_decodes_back(composer: Composer, subject: str) -> None:
    _, message = compose(composer, subject=subject)
    assert message["Subject"] == subject


LONG_NAME = "Şükrü Çağlayan-Öztürk van der Müllerşteeg-Ğündoğdu Ijsselmeerdijkstraße"
LONG_SUBJECT = (
    "Je bestelling WP-1001 bij Wïnparts: Remblokkenset vooras, Ruitenwisserset Aerotwin "
    "en Accu Varta Blue Dynamic zijn onderweg naar Şükrü Çağlayan-Öztürk"
)
ENCODED_WORD = re.compile(r"=\?utf-8\?([qb])\?([^?]*)\?=")


def raw_header(envelope: Envelope, name: str) -> str:
    """The header as it went on the wire, its folded lines included."""
    head = envelope.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return re.search(rf"^{name}: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head, re.MULTILINE).group()  # type: ignore[union-attr]


@pytest.mark.parametrize(("where", "text"), [("To", LONG_NAME), ("Subject", LONG_SUBJECT)])
def test_long_non_ascii_text_folds_into_short_encoded_words_between_words(
    composer: Composer, where: str, text: str
) -> None:
    """RFC 2047: encoded words of at most 75 characters, each holding whole words (issue 22)."""
    if where == "To":
        envelope, message = compose(composer, name=text)
        # CPython's parser adds a space between encoded words in a display name (see below).
        assert " ".join(message["To"].addresses[0].display_name.split()) == text
    else:
        envelope, message = compose(composer, subject=text)
        assert message["Subject"] == text
    raw = raw_header(envelope, where)
    words = ENCODED_WORD.findall(raw)
    assert len(words) > 1
    for line in raw.split("\r\n"):
        assert len(line) <= 76, line
    assert all(len(match.group()) <= 75 for match in ENCODED_WORD.finditer(raw))
    pieces = [
        piece.decode("utf-8") for piece, charset in decode_header(raw.split(": ", 1)[1]) if charset
    ]
    assert "".join(pieces) == text
    for piece in pieces[:-1]:
        assert piece.endswith(" "), f"{piece!r} splits a word"


def test_a_word_too_long_for_one_encoded_word_is_split_between_characters(
    composer: Composer,
) -> None:
    name = "Ö" * 60
    envelope, _ = compose(composer, name=name)
    raw = raw_header(envelope, "To")
    pieces = decode_header(raw.split(": ", 1)[1])
    assert b"".join(piece for piece, charset in pieces if charset).decode() == name
    assert all(len(match.group()) <= 75 for match in ENCODED_WORD.finditer(raw))


def test_no_name_gives_a_bare_address(composer: Composer) -> None:
    _, message = compose(composer, name=None)
    [address] = message["To"].addresses
    assert address.display_name == "" and address.addr_spec == "jan@example.nl"


@pytest.mark.parametrize(("locale", "language"), [("nl", "nl"), ("en", "en"), ("nl_BE", "nl-BE")])
def test_content_language_uses_the_bcp47_form(
    composer: Composer, locale: str, language: str
) -> None:
    _, message = compose(composer, locale=locale)
    assert message["Content-Language"] == language


@pytest.mark.parametrize(
    ("kind", "category"),
    [
        ("order_confirmation", "order_updates"),
        ("shipping_notice", "order_updates"),
        ("review_products", "reviews"),
        ("review_service", "reviews"),
        ("newsletter", "newsletter"),
    ],
)
def test_unsubscribable_kinds_carry_list_headers(
    composer: Composer, kind: str, category: str
) -> None:
    _, message = compose(composer, kind)
    assert header_names(message) >= LIST_HEADERS
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(message["List-Id"]).endswith(f"<{category}.winparts.example>")


def test_each_category_has_its_own_list_id(composer: Composer) -> None:
    ids = {
        str(compose(composer, kind)[1]["List-Id"])
        for kind in ("order_confirmation", "review_products", "newsletter")
    }
    assert len(ids) == 3


@pytest.mark.parametrize("kind", ["verification_question", "newsletter_confirm"])
def test_essential_kinds_carry_no_list_headers(composer: Composer, kind: str) -> None:
    _, message = compose(composer, kind)
    assert not LIST_HEADERS & header_names(message)


def test_verification_question_replies_to_customer_service() -> None:
    composer = Composer(
        identity(reply_to="Klantenservice <klantenservice@winparts.example>"), FrozenClock(NOW)
    )
    _, message = compose(composer, "verification_question")
    assert message["Reply-To"] == "Klantenservice <klantenservice@winparts.example>"
    assert header_names(message) == BASE_HEADERS | {"Reply-To"}


def test_verification_question_replies_to_the_sender_by_default(composer: Composer) -> None:
    _, message = compose(composer, "verification_question")
    assert message["Reply-To"] == "Winparts <service@winparts.example>"


def test_other_kinds_have_no_reply_to_by_default(composer: Composer) -> None:
    for kind in ("order_confirmation", "review_products", "newsletter", "newsletter_confirm"):
        assert compose(composer, kind)[1]["Reply-To"] is None


def test_the_reply_to_setting_is_for_the_kinds_that_ask_for_a_reply() -> None:
    composer = Composer(
        identity(reply_to="Klantenservice <klantenservice@winparts.example>"), FrozenClock(NOW)
    )
    assert [name for name, kind in kinds.KINDS.items() if kind.asks_reply] == [
        "verification_question"
    ]
    for kind in ("order_confirmation", "shipping_notice", "newsletter", "newsletter_confirm"):
        assert compose(composer, kind)[1]["Reply-To"] is None


def test_a_kind_may_have_its_own_reply_to() -> None:
    composer = Composer(
        identity(
            reply_to="Klantenservice <klantenservice@winparts.example>",
            reply_to_kinds={
                "newsletter": "Redactie <redactie@winparts.example>",
                "verification_question": "Controle <controle@winparts.example>",
            },
        ),
        FrozenClock(NOW),
    )
    assert compose(composer, "newsletter")[1]["Reply-To"] == "Redactie <redactie@winparts.example>"
    question = compose(composer, "verification_question")[1]
    assert question["Reply-To"] == "Controle <controle@winparts.example>"
    assert compose(composer, "review_products")[1]["Reply-To"] is None


def test_a_reply_to_for_an_unknown_kind_or_no_address_is_a_bad_setting() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        identity(reply_to_kinds={"newsleter": "x@winparts.example"})
    assert caught.value.variable == "NOTIFIER_REPLY_TO_KINDS"
    with pytest.raises(errors.ConfigurationError):
        identity(reply_to_kinds={"newsletter": "nobody"})


def test_newsletter_comes_from_the_newsletter_sender(composer: Composer) -> None:
    envelope, message = compose(composer, "newsletter")
    assert message["From"] == "Winparts Nieuws <nieuws@news.winparts.example>"
    assert envelope.sender == "nieuws@news.winparts.example"
    assert envelope.message_id.endswith("@news.winparts.example>")
    for kind in ("order_confirmation", "review_products"):
        assert compose(composer, kind)[0].sender == "service@winparts.example"


def test_newsletter_falls_back_to_the_main_sender() -> None:
    composer = Composer(identity(newsletter=None), FrozenClock(NOW))
    envelope, message = compose(composer, "newsletter")
    assert message["From"] == "Winparts <service@winparts.example>"
    assert envelope.sender == "service@winparts.example"


def test_message_id_is_deterministic_per_message_key(composer: Composer) -> None:
    first = compose(composer, key="msg_1")[0].message_id
    assert compose(composer, key="msg_1", subject="other", name="other")[0].message_id == first
    assert compose(composer, key="msg_2")[0].message_id != first
    other_secret = Composer(
        Identity.parse(
            sender="Winparts <service@winparts.example>",
            newsletter_sender=None,
            reply_to=None,
            list_id_domain="winparts.example",
            list_name="Winparts",
            secret="another-secret",
        ),
        FrozenClock(NOW),
    )
    assert compose(other_secret, key="msg_1")[0].message_id != first
    assert "msg_1" not in first  # the outbox id is not disclosed


def test_test_mail_is_marked(composer: Composer) -> None:
    _, message = compose(composer, test=True)
    assert message["Subject"] == "[TEST] Bedankt voor je bestelling WP-1001"
    assert message["X-Notifier-Test"] == "yes"


def test_without_an_unsubscribe_url_there_is_no_list_unsubscribe(composer: Composer) -> None:
    _, message = compose(composer, unsubscribe_url=None)
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    "value",
    ["not an address", "Winparts", "", "Winparts <>"],
)
def test_a_bad_sender_setting_names_its_variable(value: str) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        Identity.parse(
            sender=value,
            newsletter_sender=None,
            reply_to=None,
            list_id_domain="winparts.example",
            list_name="Winparts",
            secret="s",
        )
    assert caught.value.variable == "NOTIFIER_FROM"


HOSTILE = [
    "Jan\r\nBcc: evil@example.com",
    "Jan\nBcc: evil@example.com",
    "Jan\rBcc: evil@example.com",
    "Jan\r\n\r\n<html>body injection</html>",
    "Jan\x00Vries",
    "Jan\u2028Bcc: evil@example.com",
    "Jan\u2029Bcc: evil@example.com",
    "Jan\x0bBcc: evil@example.com\x0c",
    "Jan\x1cVries\x1e",
    "Jan\tde\tVries",
    "x" * 10_000,
    "é" * 10_000,
    "Jöns 😀 Åberg\r\nX-Evil: 1",
    '"Quoted, Name" <evil@example.com>',
    "evil@example.com",
    "<evil@example.com>",
    "Jan (comment",
    "\\",
    " ",
    "",
]


def assert_only_intended_headers(message: EmailMessage, kind: str = "order_confirmation") -> None:
    assert not message.defects
    expected = BASE_HEADERS | (LIST_HEADERS if kinds.get(kind).unsubscribable else set())
    assert header_names(message) == expected
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_cannot_add_headers(composer: Composer, hostile: str) -> None:
    envelope, message = compose(composer, name=hostile)
    assert_only_intended_headers(message)
    assert envelope.recipients == ("jan@example.nl",)
    [address] = message["To"].addresses
    assert address.addr_spec == "jan@example.nl"
    # CPython's parser puts a space between the encoded words of a long folded display name
    # (mail clients join them, as RFC 2047 says), so compare without whitespace.
    assert "".join(address.display_name.split()) == "".join(clean_header_text(hostile).split())
    assert len(address.display_name) <= 200 + 20


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_subjects_stay_one_subject_line(composer: Composer, hostile: str) -> None:
    _, message = compose(composer, subject=hostile)
    assert_only_intended_headers(message)
    assert message["Subject"] == clean_header_text(hostile)


@pytest.mark.parametrize("hostile", ["Jan\x85Bcc: evil@example.com", "Jan\x9bVries\x80"])
def test_c1_control_characters_in_names_are_encoded(composer: Composer, hostile: str) -> None:
    _, message = compose(composer, name=hostile)
    assert_only_intended_headers(message)


def test_other_c1_control_characters_in_subjects_are_encoded(composer: Composer) -> None:
    _, message = compose(composer, subject="Jan\x9bVries\x80")
    assert_only_intended_headers(message)


NEL_IN_SUBJECT = (
    "BUG: clean_header_text (notifier/mail/compose.py, _CONTROL) strips C0 controls, DEL, "
    "U+2028 and U+2029 but not U+0085 (NEL), which str.splitlines() and so the email package "
    "treat as a line break: a subject containing it makes compose() raise ValueError('Header "
    "values may not contain linefeed or carriage return characters')"
)


def test_nel_in_a_subject_is_removed(composer: Composer) -> None:
    _, message = compose(composer, subject="Jan\x85Bcc: evil@example.com")
    assert_only_intended_headers(message)
    assert message["Subject"] == "Jan Bcc: evil@example.com"


@pytest.mark.parametrize("where", ["name", "subject"])
def test_lone_surrogates_are_removed(composer: Composer, where: str) -> None:
    hostile = "Jan\ud800Vries"
    if where == "name":
        _, message = compose(composer, name=hostile)
    else:
        _, message = compose(composer, subject=hostile)
    assert_only_intended_headers(message)


@pytest.mark.parametrize(
    "name",
    ["=?utf-8?b?QmNjOiBldmlsQGV4YW1wbGUuY29t?=", "=?utf-8?q?evil=40example=2Ecom=3A?= x"],
    ids=["b-encoded", "q-encoded"],
)
def test_a_name_that_looks_encoded_cannot_change_the_to_address(
    composer: Composer, name: str
) -> None:
    _, message = compose(composer, name=name)
    assert [a.addr_spec for a in message["To"].addresses] == ["jan@example.nl"]


def test_clean_header_text() -> None:
    assert clean_header_text("  Jan\r\n\tde   Vries \x00") == "Jan de Vries"
    assert clean_header_text("a\u2028b\u2029c") == "a b c"
    assert clean_header_text("x" * 500) == "x" * 200


def check_any_name_and_subject(name: str | None, subject: str, kind: str) -> None:
    composer = Composer(identity(), FrozenClock(NOW))
    envelope = composer.compose(
        "msg_1",
        kinds.get(kind),
        rendered(subject),
        Headers(to_email="jan@example.nl", to_name=name, unsubscribe_url=UNSUBSCRIBE),
    )
    message = parse(envelope.data)
    expected = BASE_HEADERS | (LIST_HEADERS if kinds.get(kind).unsubscribable else set())
    if kind == "verification_question":
        expected |= {"Reply-To"}
    assert not message.defects
    assert header_names(message) == expected
    assert "\n" not in str(message["Subject"])
    assert envelope.recipients == ("jan@example.nl",)
    assert isinstance(message["To"].addresses[0], Address)


KIND_NAMES = st.sampled_from(sorted(kinds.KINDS))


@settings(deadline=None, max_examples=200)
@given(name=st.text(max_size=300) | st.none(), subject=st.text(max_size=300), kind=KIND_NAMES)
@example(name=None, subject="0\x850", kind="order_confirmation")
def test_any_name_and_subject_give_exactly_the_intended_headers(
    name: str | None, subject: str, kind: str
) -> None:
    check_any_name_and_subject(name, subject, kind)


@settings(deadline=None, max_examples=200)
@given(
    name=st.text(max_size=300) | st.none(),
    subject=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x85"), max_size=300
    ),
    kind=KIND_NAMES,
)
def test_any_name_and_subject_without_nel_give_exactly_the_intended_headers(
    name: str | None, subject: str, kind: str
) -> None:
    """The property above minus the NEL bug, so everything else stays guarded meanwhile."""
    check_any_name_and_subject(name, subject, kind)


LINE_ENDS = st.lists(st.sampled_from(["a", " ", ".", "é", "\r", "\n", "\r\n", "="])).map("".join)


@settings(max_examples=200, deadline=None)
@given(name=LINE_ENDS, subject=LINE_ENDS, text=LINE_ENDS, html=LINE_ENDS)
def test_every_line_of_a_composed_message_ends_with_crlf(
    name: str, subject: str, text: str, html: str
) -> None:
    """What ``CrlfMessage`` promises the transport, which then sends it without counting."""
    mail = RenderedMail(subject=subject, preheader="", html=html, text=text, locale="nl")
    envelope = Composer(identity(), FrozenClock(NOW)).compose(
        "msg_1",
        kinds.get("order_confirmation"),
        mail,
        Headers(to_email="jan@example.nl", to_name=name, unsubscribe_url=UNSUBSCRIBE),
    )
    data = envelope.data
    assert isinstance(data, CrlfMessage)
    assert data.count(b"\n") == data.count(b"\r") == data.count(b"\r\n")
