"""SMTP delivery against a real aiosmtpd: reuse, classification, faults, plaintext, bounds."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from notifier import errors
from notifier.delivery.transport import SmtpConfig, SmtpTransport, data_payload, is_loopback
from tests.smtpd import MESSAGE, SENDER, ClosingController, RecordingHandler, SmtpServer, free_port


class CountingHandler(RecordingHandler):
    """Also counts sessions (EHLOs and open connections) and refuses some recipients."""

    def __init__(self) -> None:
        super().__init__()
        self.ehlos = 0
        self.open_connections = 0
        self.peak_connections = 0
        self.protocols: list[SMTP] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("unknown@"):
            return "550 5.1.1 no such user"
        if address.startswith("greylisted@"):
            return "450 4.2.0 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # tests/smtpd.py's "drop" calls session.transport.close(), but aiosmtpd's Session has no
        # transport (AttributeError → "500 Error"), so the drop is done here on the server.
        with self.lock:
            drop = bool(self.plan.replies) and self.plan.replies[0] == "drop"
            if drop:
                self.plan.replies.popleft()
        if drop:
            server.transport.close()
            return "421 closing"
        return await super().handle_DATA(server, session, envelope)

    def opened(self, protocol: SMTP) -> None:
        with self.lock:
            self.open_connections += 1
            self.peak_connections = max(self.peak_connections, self.open_connections)
            self.protocols.append(protocol)

    def closed(self) -> None:
        with self.lock:
            self.open_connections -= 1


class CountingSMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(self.event_handler, CountingHandler)
        self.event_handler.opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        assert isinstance(self.event_handler, CountingHandler)
        self.event_handler.closed()
        super().connection_lost(error)


class CountingController(ClosingController):
    def session(self) -> SMTP:
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


class CountingServer(SmtpServer):
    """tests.smtpd.SmtpServer whose handler also sees EHLO, RCPT and connections."""

    handler: CountingHandler

    def __init__(self) -> None:
        self.handler = CountingHandler()
        self.port = free_port()
        self.host = "127.0.0.1"
        self._controller = CountingController(self.handler, hostname=self.host, port=self.port)

    def drop_connections(self) -> None:
        """Close every session from the server side, as a server's idle timeout does."""
        done = threading.Event()
        loop = self._controller.loop

        def close_all() -> None:
            for protocol in list(self.handler.protocols):
                if protocol.transport is not None:
                    protocol.transport.close()
            done.set()

        loop.call_soon_threadsafe(close_all)
        assert done.wait(5)


@pytest.fixture
def server() -> Any:
    running = CountingServer().start()
    yield running
    running.stop()


def transport_for(server: SmtpServer, **changes: Any) -> SmtpTransport:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "timeout": 5.0,
    }
    values.update(changes)
    return SmtpTransport(SmtpConfig(**values))


async def test_five_sends_share_one_connection(server: CountingServer) -> None:
    transport = transport_for(server)
    try:
        for number in range(5):
            reply = await transport.send(SENDER, [f"klant{number}@example.nl"], MESSAGE)
            assert "OK" in reply
    finally:
        await transport.close()
    assert [item.recipients for item in server.received] == [
        [f"klant{n}@example.nl"] for n in range(5)
    ]
    assert server.received[0].data.endswith(b"Hallo Jan\r\n")
    assert server.handler.ehlos == 1
    assert server.handler.peak_connections == 1


@pytest.mark.parametrize(
    ("message", "payload"),
    [
        (b"A: b\r\n\r\nbody\r\n", b"A: b\r\n\r\nbody\r\n.\r\n"),
        (b"A: b\r\n\r\n.\r\n..two\r\n.", b"A: b\r\n\r\n..\r\n...two\r\n..\r\n.\r\n"),
        (b".starts\r\nx", b"..starts\r\nx\r\n.\r\n"),
        (b"lone\nlf\rcr\r\n.dot\n", b"lone\r\nlf\r\ncr\r\n..dot\r\n.\r\n"),
    ],
)
def test_the_data_payload_has_crlf_line_ends_and_doubled_leading_dots(
    message: bytes, payload: bytes
) -> None:
    assert data_payload(message) == payload


async def test_lines_starting_with_a_dot_arrive_unchanged(server: CountingServer) -> None:
    """A lone "." line would end the message early; quoted-printable HTML can start lines so."""
    body = b"\r\n.\r\n.hidden { display: none }\r\n..\r\nend\r\n"
    transport = transport_for(server)
    try:
        await transport.send(SENDER, ["jan@example.nl"], MESSAGE + body)
    finally:
        await transport.close()
    assert server.received[0].data.endswith(b"Hallo Jan\r\n" + body)


async def test_close_ends_the_sessions(server: CountingServer) -> None:
    transport = transport_for(server)
    await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    assert server.handler.open_connections == 1
    await transport.close()
    for _ in range(100):
        if server.handler.open_connections == 0:
            break
        await asyncio.sleep(0.01)  # the server thread notices the QUIT
    assert server.handler.open_connections == 0


@pytest.mark.parametrize(
    ("reply", "kind", "code", "text"),
    [
        ("451 4.3.0 try again later", errors.TransientDeliveryError, 451, "4.3.0 try again later"),
        (
            "452 4.3.1 insufficient storage",
            errors.TransientDeliveryError,
            452,
            "insufficient storage",
        ),
        ("550 5.7.1 message refused", errors.PermanentDeliveryError, 550, "5.7.1 message refused"),
        ("554 5.6.0 content rejected", errors.PermanentDeliveryError, 554, "content rejected"),
    ],
)
async def test_data_replies_are_classified_with_code_and_text(
    server: CountingServer,
    reply: str,
    kind: type[errors.DeliveryError],
    code: int,
    text: str,
) -> None:
    transport = transport_for(server)
    server.fail_next(reply)
    try:
        with pytest.raises(kind) as caught:
            await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
        assert type(caught.value) is kind
        assert caught.value.smtp_code == code
        assert text in caught.value.message
        assert caught.value.permanent is (code >= 500)
        # The session survives a refused message: the next one goes over the same connection.
        await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    finally:
        await transport.close()
    assert len(server.received) == 1
    assert server.handler.ehlos == 1


@pytest.mark.parametrize(
    ("recipient", "kind", "code"),
    [
        ("unknown@example.nl", errors.PermanentDeliveryError, 550),
        ("greylisted@example.nl", errors.TransientDeliveryError, 450),
    ],
)
async def test_refused_recipients_are_classified(
    server: CountingServer, recipient: str, kind: type[errors.DeliveryError], code: int
) -> None:
    transport = transport_for(server)
    try:
        with pytest.raises(kind) as caught:
            await transport.send(SENDER, [recipient], MESSAGE)
        assert caught.value.smtp_code == code
        await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    finally:
        await transport.close()
    assert [item.recipients for item in server.received] == [["jan@example.nl"]]
    assert server.handler.ehlos == 1


async def test_a_421_closes_the_session_and_the_next_send_reconnects(
    server: CountingServer,
) -> None:
    transport = transport_for(server)
    server.fail_next("421 4.3.2 shutting down")
    try:
        with pytest.raises(errors.TransientDeliveryError) as caught:
            await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
        assert caught.value.smtp_code == 421
        await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    finally:
        await transport.close()
    assert len(server.received) == 1
    assert server.handler.ehlos == 2


async def test_a_connection_dropped_mid_data_is_transient_and_the_next_send_works(
    server: CountingServer,
) -> None:
    transport = transport_for(server)
    server.fail_next("drop")
    try:
        with pytest.raises(errors.TransientDeliveryError) as caught:
            await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
        assert not caught.value.permanent
        reply = await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
        assert "OK" in reply
    finally:
        await transport.close()
    assert len(server.received) == 1
    assert server.handler.ehlos == 2  # a fresh session after the drop


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    server: CountingServer,
) -> None:
    transport = transport_for(server)
    try:
        await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
        server.drop_connections()
        await asyncio.sleep(0.1)  # let the client's loop read the EOF, as it would while idle
        await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    finally:
        await transport.close()
    assert len(server.received) == 2
    assert server.handler.ehlos == 2


async def test_a_server_that_is_not_listening_is_transient() -> None:
    transport = SmtpTransport(SmtpConfig("127.0.0.1", free_port(), tls="none", timeout=5.0))
    try:
        with pytest.raises(errors.TransientDeliveryError) as caught:
            await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
        assert not caught.value.permanent and caught.value.smtp_code is None
    finally:
        await transport.close()


async def test_starttls_against_a_server_without_it_is_not_silently_plaintext(
    server: CountingServer,
) -> None:
    transport = transport_for(server, tls="starttls")
    try:
        with pytest.raises(errors.DeliveryError):
            await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    finally:
        await transport.close()
    assert server.received == []


@pytest.mark.parametrize("host", ["192.0.2.10", "2001:db8::1", "smtp.example.com", "10.0.0.1"])
def test_plaintext_to_a_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        SmtpTransport(SmtpConfig(host, 25, tls="none"))
    assert caught.value.variable == "NOTIFIER_SMTP_TLS"
    SmtpTransport(SmtpConfig(host, 25, tls="none", allow_plaintext=True))
    SmtpTransport(SmtpConfig(host, 587, tls="starttls"))
    SmtpTransport(SmtpConfig(host, 465, tls="tls"))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"])
def test_plaintext_to_loopback_is_allowed(host: str) -> None:
    assert is_loopback(host)
    SmtpTransport(SmtpConfig(host, 25, tls="none"))


@pytest.mark.parametrize("host", ["192.0.2.10", "0.0.0.0", "::", "smtp.example.com", ""])
def test_is_loopback_is_false_for_other_hosts(host: str) -> None:
    assert not is_loopback(host)


async def test_concurrency_is_bounded_by_the_pool(server: CountingServer) -> None:
    transport = transport_for(server, connections=2)
    server.handler.plan.stall_seconds = 0.05  # keep each DATA busy so the sends overlap
    try:
        replies = await asyncio.gather(
            *(transport.send(SENDER, [f"klant{n}@example.nl"], MESSAGE) for n in range(10))
        )
    finally:
        await transport.close()
    assert len(replies) == 10
    assert len(server.received) == 10
    assert server.handler.peak_connections == 2
    assert server.handler.ehlos == 2


async def test_a_failure_inside_a_burst_does_not_leak_a_slot(server: CountingServer) -> None:
    transport = transport_for(server, connections=2)
    server.fail_next("drop", "451 busy", "550 no")
    try:
        results = await asyncio.gather(
            *(transport.send(SENDER, [f"klant{n}@example.nl"], MESSAGE) for n in range(8)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 3
        assert all(isinstance(f, errors.DeliveryError) for f in failures)
        # All slots are free again: two more sends run side by side.
        await asyncio.wait_for(
            asyncio.gather(
                *(transport.send(SENDER, ["jan@example.nl"], MESSAGE) for _ in range(2))
            ),
            timeout=5,
        )
    finally:
        await transport.close()
    assert len(server.received) == 7
    assert server.handler.peak_connections <= 2


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("recipient", ["jan@exämple.nl", "jöns@example.nl"])
async def test_a_recipient_the_server_cannot_take_is_classified(
    server: CountingServer, recipient: str
) -> None:
    transport = transport_for(server)
    outcome: BaseException | None = None
    try:
        await transport.send(SENDER, [recipient], MESSAGE)
    except Exception as exc:
        outcome = exc
    escaped = type(outcome)
    outcome = None
    # Close from the server side whatever session the failure left open (the transport no longer
    # holds it), so it is not reported as a leak during some later test.
    server.drop_connections()
    for _ in range(100):
        if server.handler.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the client's loop reads the EOF and closes its side
    gc.collect()
    try:
        await transport.send(SENDER, ["jan@example.nl"], MESSAGE)
    finally:
        await transport.close()
    assert escaped is not None and issubclass(escaped, errors.DeliveryError), escaped
    assert len(server.received) == 1


@pytest.mark.parametrize(
    "recipient", ["o'brien+shop@example.ie", '"jan de vries"@example.nl', "jan@[127.0.0.1]"]
)
async def test_addresses_reach_the_server_as_written(
    server: CountingServer, recipient: str
) -> None:
    """Plain addresses skip aiosmtplib's parsing, others go through it: both arrive unchanged."""
    transport = transport_for(server)
    try:
        await transport.send(SENDER, [recipient], MESSAGE)
    finally:
        await transport.close()
    assert [item.recipients for item in server.received] == [[recipient]]
    assert [item.sender for item in server.received] == [SENDER]


async def test_an_address_cannot_add_a_parameter_to_the_command(server: CountingServer) -> None:
    """What is not a plain address goes through aiosmtplib's parsing, which keeps the address."""
    transport = transport_for(server)
    try:
        await transport.send(SENDER, ["jan@example.nl> NOTIFY=NEVER"], MESSAGE)
    finally:
        await transport.close()
    assert [item.recipients for item in server.received] == [["jan@example.nl"]]
