"""DKIM signing: sent mail verifies with dkimpy, tampering breaks it, bad settings stop startup."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifier import errors
from notifier.mail import dkim as signing
from notifier.service import Notifier
from tests.conftest import event
from tests.smtpd import SmtpServer

SELECTOR = "mail2026"
DOMAIN = "winparts.example"
KEY_VARIABLE = "NOTIFIER_DKIM_KEY_FILE"


@dataclass
class PublishedKey:
    """The DNS TXT record a shop would publish, answered without DNS; remembers the names asked."""

    record: bytes
    asked: list[bytes] = field(default_factory=list)

    def __call__(self, name: bytes, timeout: int = 5) -> bytes:
        self.asked.append(name)
        return self.record


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, format: str = "PKCS8") -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        getattr(serialization.PrivateFormat, format),
        serialization.NoEncryption(),
    )


def published(key: rsa.RSAPrivateKey) -> PublishedKey:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublishedKey(b"v=DKIM1; k=rsa; p=" + base64.b64encode(der))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_path(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> Path:
    """The key as ``openssl genpkey`` writes it (PKCS#8), which dkimpy alone cannot read."""
    path = tmp_path / "dkim.key"
    path.write_bytes(pem(private_key))
    return path


@pytest.fixture
def dns(private_key: rsa.RSAPrivateKey) -> PublishedKey:
    return published(private_key)


async def signed_order_confirmation(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, key_path: Path
) -> bytes:
    engine = make_engine(dkim_selector=SELECTOR, dkim_domain=DOMAIN, dkim_key_file=str(key_path))
    engine.handle_event(event("order.placed"))
    assert await engine.dispatch_due() == 1
    [mail] = smtp_server.received
    return mail.data


def signature_tags(data: bytes) -> dict[str, str]:
    header = data.split(b"\r\n\r\n", 1)[0].decode()
    match = re.match(r"DKIM-Signature:(.*?)\r\n(?=\S)", header, re.DOTALL)
    assert match is not None
    value = re.sub(r"\s+", "", match[1])
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


async def test_sent_mail_carries_a_signature_that_verifies(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    key_path: Path,
    dns: PublishedKey,
) -> None:
    data = await signed_order_confirmation(make_engine, smtp_server, key_path)
    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=dns)
    assert dns.asked == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()]
    tags = signature_tags(data)
    assert tags["d"] == DOMAIN and tags["s"] == SELECTOR
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    signed = tags["h"].lower().split(":")
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    for name in signing.SIGNED_HEADERS:
        present = len(re.findall(rf"^{name}:", head, re.MULTILINE | re.IGNORECASE))
        # Issue 22: the oversigned ones once more than present, so a second copy breaks it.
        expected = present + 1 if name in signing.OVERSIGNED else max(present, 1)
        assert signed.count(name.lower()) == expected, name
    assert set(signed) == {name.lower() for name in signing.SIGNED_HEADERS}
    assert "l" not in tags  # no body length limit: nothing can be appended under the signature


async def test_relaxed_canonicalization_survives_refolding(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    key_path: Path,
    dns: PublishedKey,
) -> None:
    data = await signed_order_confirmation(make_engine, smtp_server, key_path)
    refolded = data.replace(b"\r\nSubject: ", b"\r\nSubject:\r\n   ", 1)
    assert refolded != data
    assert dkim.verify(refolded, dnsfunc=dns)


@pytest.mark.parametrize("change", ["body", "subject", "added Reply-To"])
async def test_a_tampered_message_does_not_verify(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    key_path: Path,
    dns: PublishedKey,
    change: str,
) -> None:
    data = await signed_order_confirmation(make_engine, smtp_server, key_path)
    head, body = data.split(b"\r\n\r\n", 1)
    if change == "body":
        assert b"Remblokken" in body
        tampered = head + b"\r\n\r\n" + body.replace(b"Remblokken", b"Remschijven", 1)
    elif change == "subject":
        tampered = re.sub(
            rb"\r\nSubject: [^\r]*", b"\r\nSubject: Uw pakket is vertraagd", data, count=1
        )
    else:
        # Reply-To is signed while absent, so nobody can add one later.
        assert b"\r\nReply-To:" not in head
        tampered = head + b"\r\nReply-To: <phisher@evil.example>\r\n\r\n" + body
    assert tampered != data
    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(tampered, dnsfunc=dns)


@pytest.mark.parametrize(
    "added",
    [
        b"List-Unsubscribe: <https://evil.example/unsubscribe>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        b"From: Winparts <service@evil.example>",
        b"To: someone@evil.example",
        b"Subject: Uw pakket is vertraagd",
        b"Date: Mon, 23 Nov 2026 09:00:00 +0000",
    ],
    ids=lambda header: header.split(b":")[0].decode(),
)
async def test_a_second_copy_of_an_oversigned_header_does_not_verify(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    key_path: Path,
    dns: PublishedKey,
    added: bytes,
) -> None:
    """Issue 22: a relay adding a second List-Unsubscribe (or From, …) breaks the signature."""
    data = await signed_order_confirmation(make_engine, smtp_server, key_path)
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"\r\n" + added.split(b":")[0] + b":" in head  # one copy is there already
    tampered = head + b"\r\n" + added + b"\r\n\r\n" + body
    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(tampered, dnsfunc=dns)


async def test_a_different_published_key_does_not_verify(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, key_path: Path
) -> None:
    data = await signed_order_confirmation(make_engine, smtp_server, key_path)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not dkim.verify(data, dnsfunc=published(other))


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"selector": SELECTOR}, "NOTIFIER_DKIM_DOMAIN"),
        ({"domain": DOMAIN}, "NOTIFIER_DKIM_SELECTOR"),
        ({"selector": SELECTOR, "domain": DOMAIN}, KEY_VARIABLE),
        ({"key_file": "KEY"}, "NOTIFIER_DKIM_SELECTOR"),
        ({"domain": DOMAIN, "key_file": "KEY"}, "NOTIFIER_DKIM_SELECTOR"),
        ({"selector": SELECTOR, "key_file": "KEY"}, "NOTIFIER_DKIM_DOMAIN"),
    ],
)
def test_partial_settings_name_the_missing_variable(
    key_path: Path, given: dict[str, str], missing: str
) -> None:
    values: dict[str, Any] = {"selector": None, "domain": None, "key_file": None}
    values.update({name: key_path if value == "KEY" else value for name, value in given.items()})
    with pytest.raises(errors.ConfigurationError) as caught:
        signing.configure(**values)
    assert caught.value.variable == missing
    assert missing in caught.value.message


async def test_partial_settings_stop_the_engine_at_startup(
    make_engine: Callable[..., Notifier], key_path: Path
) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        make_engine(dkim_domain=DOMAIN, dkim_key_file=str(key_path))
    assert caught.value.variable == "NOTIFIER_DKIM_SELECTOR"


def test_no_settings_means_no_signer() -> None:
    assert signing.configure(selector=None, domain=None, key_file=None) is None


async def test_without_dkim_settings_mail_is_unsigned(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer
) -> None:
    engine = make_engine()
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    [mail] = smtp_server.received
    assert b"DKIM-Signature" not in mail.data


@pytest.mark.parametrize("problem", ["missing", "directory", "garbage", "public key", "encrypted"])
def test_an_unusable_key_file_is_a_configuration_error(
    tmp_path: Path, private_key: rsa.RSAPrivateKey, problem: str
) -> None:
    path = tmp_path / "dkim.key"
    if problem == "directory":
        path.mkdir()
    elif problem == "garbage":
        path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    elif problem == "public key":
        path.write_bytes(
            private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    elif problem == "encrypted":
        path.write_bytes(
            private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    with pytest.raises(errors.ConfigurationError) as caught:
        signing.configure(selector=SELECTOR, domain=DOMAIN, key_file=path)
    assert caught.value.variable == KEY_VARIABLE


async def test_an_unreadable_key_file_stops_the_engine_at_startup(
    make_engine: Callable[..., Notifier], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "dkim.key"
    with pytest.raises(errors.ConfigurationError) as caught:
        make_engine(dkim_selector=SELECTOR, dkim_domain=DOMAIN, dkim_key_file=str(missing))
    assert caught.value.variable == KEY_VARIABLE
    assert KEY_VARIABLE in str(caught.value) or str(missing) in str(caught.value)


def test_pkcs1_and_pkcs8_keys_sign_alike(private_key: rsa.RSAPrivateKey) -> None:
    message = b"From: a@winparts.example\r\nTo: b@example.nl\r\nSubject: x\r\n\r\nbody\r\n"
    for format in ("PKCS8", "TraditionalOpenSSL"):
        signed = signing.DkimSigner(SELECTOR, DOMAIN, pem(private_key, format)).sign(message)
        assert signed.endswith(message)
        assert dkim.verify(signed, dnsfunc=published(private_key))


def test_a_key_that_is_not_rsa_is_refused() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        signing.DkimSigner(SELECTOR, DOMAIN, pem(ec.generate_private_key(ec.SECP256R1())))
    assert caught.value.variable == KEY_VARIABLE
    assert "RSA" in caught.value.message


@pytest.mark.parametrize(
    ("selector", "domain", "variable"),
    [
        ("mail 2026", DOMAIN, "NOTIFIER_DKIM_SELECTOR"),
        (SELECTOR, "winparts..example", "NOTIFIER_DKIM_DOMAIN"),
        (SELECTOR, "wïnparts.example", "NOTIFIER_DKIM_DOMAIN"),
    ],
)
def test_selector_and_domain_must_be_dns_names(
    private_key: rsa.RSAPrivateKey, selector: str, domain: str, variable: str
) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        signing.DkimSigner(selector, domain, pem(private_key))
    assert caught.value.variable == variable
