"""SMTP over TLS against real aiosmtpd servers and a test-made CA: verified, or nothing sent."""

from __future__ import annotations

import datetime
import gc
import ipaddress
import ssl
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from notifier import errors
from notifier.delivery.transport import SmtpConfig, SmtpTransport
from notifier.service import Notifier, _smtp_config
from notifier.settings import Settings
from tests.conftest import event
from tests.smtpd import MESSAGE, SENDER, SmtpServer

LOCAL_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Authority:
    """A throwaway certificate authority: its certificate on disk and the key to issue with."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path
    folder: Path

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts only this CA uses: verification and host checks on."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server context whose certificate this CA issued for ``names`` (DNS names or IPs)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        alternative: list[x509.GeneralName] = []
        for name in names:
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternative.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = self.folder / f"server-{'-'.join(names)}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


def make_authority(folder: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path = folder / f"{name}-ca.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(name, key, cert, cert_path, folder)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("pki"), "winparts")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("pki-other"), "other")


ServerFactory = Callable[..., SmtpServer]


@pytest.fixture
def start_server() -> Iterator[ServerFactory]:
    """Starts aiosmtpd servers with the given Controller arguments; stops them afterwards."""
    servers: list[SmtpServer] = []

    def start(**controller_kwargs: Any) -> SmtpServer:
        server = SmtpServer(**controller_kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def starttls_server(start: ServerFactory, context: ssl.SSLContext) -> SmtpServer:
    """Offers STARTTLS and refuses mail before it (aiosmtpd's ``require_starttls``)."""
    return start(tls_context=context, require_starttls=True)


async def send_once(config: SmtpConfig) -> str:
    transport = SmtpTransport(config)
    try:
        return await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    finally:
        await transport.close()


async def assert_fails_closed(config: SmtpConfig, server: SmtpServer, *fragments: str) -> str:
    """The send fails as a transient TLS error naming ``fragments``; the server got nothing."""
    with pytest.raises(errors.TransientDeliveryError) as caught:
        await send_once(config)
    text = str(caught.value)
    assert not caught.value.permanent
    for fragment in fragments:
        assert fragment in text
    assert server.received == []
    return text


@pytest.mark.parametrize("host", LOCAL_NAMES)
async def test_starttls_with_a_trusted_certificate_delivers(
    ca: Authority, start_server: ServerFactory, host: str
) -> None:
    server = starttls_server(start_server, ca.server_context(*LOCAL_NAMES))
    config = SmtpConfig(
        host, server.port, tls="starttls", tls_context=ca.client_context(), timeout=5
    )
    reply = await send_once(config)
    assert "OK" in reply
    [mail] = server.received
    assert mail.data.endswith(b"Hallo Jan\r\n")


async def test_a_starttls_session_open_when_the_server_stops_leaves_no_socket_behind(
    ca: Authority,
) -> None:
    # aiosmtpd's own stop() left such a socket to the garbage collector, whose
    # ResourceWarning then failed whichever later test was running (issue 18).
    server = SmtpServer(tls_context=ca.server_context(*LOCAL_NAMES), require_starttls=True).start()
    config = SmtpConfig(
        "127.0.0.1", server.port, tls="starttls", tls_context=ca.client_context(), timeout=5
    )
    transport = SmtpTransport(config)
    await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    server.stop()  # the transport's pooled session is still open
    await transport.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_the_ca_file_setting_is_trusted_and_still_checks_host_names(
    ca: Authority, start_server: ServerFactory
) -> None:
    server = starttls_server(start_server, ca.server_context(*LOCAL_NAMES))
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=server.port, smtp_tls="starttls", smtp_ca_file=ca.cert_path
    )
    config = _smtp_config(settings)
    assert config.ca_file == ca.cert_path
    assert "OK" in await send_once(config)
    assert len(server.received) == 1

    elsewhere = starttls_server(start_server, ca.server_context("mail.example.org"))
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=elsewhere.port,
        smtp_tls="starttls",
        smtp_ca_file=ca.cert_path,
    )
    await assert_fails_closed(_smtp_config(settings), elsewhere, "TLS verification failed")


async def test_a_certificate_for_another_host_fails_closed(
    ca: Authority, start_server: ServerFactory
) -> None:
    server = starttls_server(start_server, ca.server_context("mail.example.org"))
    config = SmtpConfig(
        "127.0.0.1", server.port, tls="starttls", tls_context=ca.client_context(), timeout=5
    )
    text = await assert_fails_closed(config, server, "TLS verification failed", "127.0.0.1")
    assert "mismatch" in text.lower() or "not valid" in text.lower()


async def test_an_unknown_ca_fails_closed(ca: Authority, start_server: ServerFactory) -> None:
    server = starttls_server(start_server, ca.server_context(*LOCAL_NAMES))
    config = SmtpConfig("127.0.0.1", server.port, tls="starttls", timeout=5)  # system trust store
    await assert_fails_closed(config, server, "TLS verification failed", "nothing was sent")


async def test_starttls_required_but_not_offered_fails_and_sends_nothing(
    start_server: ServerFactory, ca: Authority
) -> None:
    server = start_server()  # plain SMTP, no STARTTLS in its EHLO answer
    config = SmtpConfig(
        "127.0.0.1", server.port, tls="starttls", tls_context=ca.client_context(), timeout=5
    )
    text = await assert_fails_closed(config, server, "does not offer")
    assert "STARTTLS" in text and "plaintext" in text


async def test_implicit_tls_delivers(ca: Authority, start_server: ServerFactory) -> None:
    server = start_server(ssl_context=ca.server_context(*LOCAL_NAMES))
    config = SmtpConfig(
        "127.0.0.1", server.port, tls="tls", tls_context=ca.client_context(), timeout=5
    )
    assert "OK" in await send_once(config)
    assert len(server.received) == 1


@pytest.mark.parametrize("trusted", ["unknown CA", "wrong host"])
async def test_implicit_tls_fails_closed(
    ca: Authority, other_ca: Authority, start_server: ServerFactory, trusted: str
) -> None:
    names = LOCAL_NAMES if trusted == "unknown CA" else ("mail.example.org",)
    server = start_server(ssl_context=ca.server_context(*names))
    client = other_ca if trusted == "unknown CA" else ca
    config = SmtpConfig(
        "127.0.0.1", server.port, tls="tls", tls_context=client.client_context(), timeout=5
    )
    await assert_fails_closed(config, server, "TLS verification failed")


async def test_implicit_tls_against_a_plaintext_server_is_a_tls_failure(
    start_server: ServerFactory, ca: Authority
) -> None:
    server = start_server()
    config = SmtpConfig(
        "127.0.0.1", server.port, tls="tls", tls_context=ca.client_context(), timeout=5
    )
    await assert_fails_closed(config, server, "TLS handshake failed")


def test_plaintext_to_a_non_loopback_address_is_refused_at_construction() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        SmtpTransport(SmtpConfig("192.0.2.25", 25, tls="none"))
    assert caught.value.variable == "NOTIFIER_SMTP_TLS"


def test_a_context_that_does_not_verify_is_refused() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    with pytest.raises(errors.ConfigurationError) as caught:
        SmtpTransport(SmtpConfig("smtp.example.com", 587, tls_context=lax))
    assert caught.value.variable == "NOTIFIER_SMTP_CA_FILE"
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(errors.ConfigurationError):
        SmtpTransport(SmtpConfig("smtp.example.com", 465, tls="tls", tls_context=lax))


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_an_unusable_ca_file_is_a_configuration_error(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    settings = Settings(smtp_host="smtp.example.com", smtp_ca_file=path)
    with pytest.raises(errors.ConfigurationError) as caught:
        SmtpTransport(_smtp_config(settings))
    assert caught.value.variable == "NOTIFIER_SMTP_CA_FILE"
    assert str(path) in caught.value.message


def test_an_unknown_tls_mode_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        SmtpTransport(SmtpConfig("smtp.example.com", 587, tls="ssl"))
    assert caught.value.variable == "NOTIFIER_SMTP_TLS"


async def test_an_order_confirmation_arrives_over_starttls(
    start_server: ServerFactory, make_engine: Callable[..., Notifier], ca: Authority
) -> None:
    server = starttls_server(start_server, ca.server_context(*LOCAL_NAMES))
    engine = make_engine(
        smtp_tls="starttls",
        smtp_ca_file=str(ca.cert_path),
        smtp_host="127.0.0.1",
        smtp_port=server.port,
    )
    engine.handle_event(event("order.placed"))
    assert await engine.dispatch_due() == 1
    [mail] = server.received
    assert mail.recipients == ["jan@example.nl"]
    assert "WP-1001" in mail.message["Subject"]
    [message] = engine.customer_messages("C42")
    assert message.status == "sent"


async def test_with_the_wrong_ca_the_order_confirmation_waits_with_a_tls_error(
    start_server: ServerFactory,
    make_engine: Callable[..., Notifier],
    ca: Authority,
    other_ca: Authority,
) -> None:
    server = starttls_server(start_server, ca.server_context(*LOCAL_NAMES))
    engine = make_engine(
        smtp_tls="starttls",
        smtp_ca_file=str(other_ca.cert_path),
        smtp_host="127.0.0.1",
        smtp_port=server.port,
    )
    engine.handle_event(event("order.placed"))
    await engine.dispatch_due()
    assert server.received == []
    [message] = engine.customer_messages("C42")
    assert message.status == "retrying"
    assert message.last_error is not None
    assert "TLS verification failed" in message.last_error
