"""SMTP delivery over a small pool of persistent aiosmtplib connections.

This is aiosmtplib's only home. Every failure leaves here classified:
``TransientDeliveryError`` (4xx replies, dropped connections, timeouts, TLS
failures) or ``PermanentDeliveryError`` (5xx replies), keeping the SMTP code
and text.

TLS fails closed: certificates and host names are always verified, a server
that does not offer STARTTLS when it is required gets nothing, and no
credentials or message bytes cross a connection before TLS is up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
from aiosmtplib.email import quote_address

from notifier import errors
from notifier.delivery import fence, pace
from notifier.mail import compose
from notifier.mail.compose import CrlfMessage

log = logging.getLogger(__name__)
TLS_MODES = ("tls", "starttls", "none")
IDLE_LIMIT = 30.0
"""Seconds a pooled connection may sit unused before it is replaced (servers drop idle ones)."""
_LINE_END = re.compile(rb"\r\n|\r|\n")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
"""An ASCII dot-atom address, which SMTP carries as it is (RFC 5321 section 4.1.2)."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to deliver.

    Server certificates are checked against the system trust store, or only
    against ``ca_file`` (PEM, ``NOTIFIER_SMTP_CA_FILE``) for a relay with a
    private CA, or with ``tls_context`` for callers that build their own. A
    given ``tls_context`` must verify certificates and host names: the
    transport refuses one that does not, so a test shortcut cannot reach
    production.
    """

    host: str
    port: int
    tls: str = "starttls"  # "tls", "starttls" or "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    connections: int = 8
    allow_plaintext: bool = False
    tls_context: ssl.SSLContext | None = None
    ca_file: Path | None = None
    rate: float | None = None
    """Messages per second (``NOTIFIER_SMTP_RATE``); None sends as fast as the server takes."""
    rate_burst: int | None = None
    throttle_patience: float = 300.0
    """Seconds one message waits out "too many" replies before it fails as transient."""


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    last_used: float


class SmtpTransport:
    """Sends raw messages; at most ``connections`` sessions at once, reused between sends."""

    def __init__(self, config: SmtpConfig, encoding: compose.BodyEncoding | None = None) -> None:
        """``encoding``, if given, is told after each EHLO whether the server offers 8BITMIME."""
        if config.tls == "none" and not config.allow_plaintext and not is_loopback(config.host):
            raise errors.ConfigurationError(
                f"refusing plaintext SMTP to non-loopback host {config.host!r}; "
                "use starttls/tls or set NOTIFIER_SMTP_ALLOW_PLAINTEXT=1",
                variable="NOTIFIER_SMTP_TLS",
            )
        if config.tls not in TLS_MODES:
            raise errors.ConfigurationError(
                f"unknown SMTP TLS mode {config.tls!r}; expected one of {', '.join(TLS_MODES)}",
                variable="NOTIFIER_SMTP_TLS",
            )
        self._config = config
        self._encoding = encoding
        self._tls_context = None if config.tls == "none" else _context_for(config)
        self._slots = asyncio.Semaphore(config.connections)
        self._idle: list[_Connection] = []
        self.pace = pace.Pace(config.rate, config.rate_burst)

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> str:
        """Deliver ``data`` at the configured pace; returns the server's final reply text.

        A "too many" reply slows the pace down and the message is tried again
        here, so a relay's limit costs time, not the message's retries.
        """
        waited = 0.0
        while True:
            await self.pace.take()
            try:
                reply = await self._send_once(sender, recipients, data)
            except errors.TransientDeliveryError as exc:
                code = exc.smtp_code or 0
                if (
                    not pace.is_throttling(code, str(exc))
                    or waited > self._config.throttle_patience
                ):
                    raise
                pause = self.pace.slow_down()
                log.warning("smtp.throttled code=%d rate=%.1f", code, self.pace.rate or 0)
                waited += pause
                await asyncio.sleep(pause)
                continue
            self.pace.accepted()
            return reply

    async def _send_once(self, sender: str, recipients: Sequence[str], data: bytes) -> str:
        async with self._slots:
            connection = await self._acquire()
            try:
                reply = await self._transaction(connection.client, sender, recipients, data)
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code in (421,) or not connection.client.is_connected:
                    await _discard(connection)
                else:
                    await _reset(connection)
                    self._release(connection)
                raise _classify(exc.code, exc.message) from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await _discard(connection)
                raise errors.TransientDeliveryError(f"connection failed: {exc}") from exc
            except fence.LeaseLost:
                await _discard(connection)  # mid-DATA: the connection cannot be reused
                raise
            except (UnicodeEncodeError, ValueError) as exc:
                # An address SMTP cannot carry (no SMTPUTF8, or a character that would end the
                # command): no retry will help.
                await _discard(connection)
                raise errors.PermanentDeliveryError(
                    f"address cannot be sent over SMTP: {exc}"
                ) from exc
            self._release(connection)
            return reply

    async def _transaction(
        self, client: aiosmtplib.SMTP, sender: str, recipients: Sequence[str], data: bytes
    ) -> str:
        """One mail transaction: MAIL, RCPT for each recipient, DATA; the final reply's text.

        aiosmtplib's ``sendmail`` would parse every address twice and run two
        regular expressions over the whole message (three with SIZE): a third
        of the sending process's time per mail. The message is made ready for
        DATA here instead, and written with the client's own protocol; the
        commands go through ``execute_command``, so a plain address is not
        parsed again by its ``mail`` and ``rcpt`` (``_path``). An 8bit
        message goes with ``BODY=8BITMIME``, or quoted-printable to a server
        that does not offer it.
        """
        options = []
        if isinstance(data, compose.EightBitMessage):
            if client.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            else:
                data = compose.seven_bit(data)
        payload = data_payload(data)
        if client.supports_extension("size"):
            options.append(f"SIZE={len(payload)}")
        reply = await client.execute_command(
            b"MAIL", b"FROM:" + _path(sender), *(option.encode("ascii") for option in options)
        )
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
        for recipient in recipients:
            reply = await client.execute_command(b"RCPT", b"TO:" + _path(recipient))
            if reply.code not in (250, 251):
                raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)
        start = await client.execute_command(b"DATA")
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        await fence.passed()  # the last moment before the mail leaves (see ``fence``)
        protocol = client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
        protocol.write(payload)
        reply = await protocol.read_response(timeout=self._config.timeout)
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply.message

    async def close(self) -> None:
        """Quit every idle session; the loop then gets a turn to finish closing the sockets."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await _quit(connection)
        if idle:
            await asyncio.sleep(0)

    async def _acquire(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            fresh = time.monotonic() - connection.last_used < IDLE_LIMIT
            if fresh and connection.client.is_connected:
                return connection
            await _discard(connection)
        return _Connection(await self._connect(), time.monotonic())

    def _release(self, connection: _Connection) -> None:
        connection.last_used = time.monotonic()
        self._idle.append(connection)

    async def _connect(self) -> aiosmtplib.SMTP:
        """A ready session: connected, upgraded to TLS as configured, logged in.

        STARTTLS and login are done here step by step rather than by
        aiosmtplib's ``connect()``, so each failure can be named: a server
        without STARTTLS or a certificate that does not verify ends the
        session before anything else is said on it.
        """
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.tls == "tls",
            start_tls=False,
            validate_certs=True,
            tls_context=self._tls_context,
            timeout=config.timeout,
        )
        try:
            await client.connect()
            if config.tls == "starttls":
                await self._start_tls(client)
            if config.username is not None:
                await client.login(config.username, config.password or "")
            if client.last_ehlo_response is None:  # what it offers (8BITMIME) is known now
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except errors.DeliveryError:
            client.close()
            raise
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise _classify(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            raise self._connect_failure(exc) from exc
        except BaseException:
            client.close()
            raise
        if self._encoding is not None:
            self._encoding.eight_bit = client.supports_extension("8bitmime")
        return client

    async def _start_tls(self, client: aiosmtplib.SMTP) -> None:
        """Upgrade the session or fail; never go on in plaintext.

        aiosmtplib's ``start_tls=True`` also refuses a server without
        STARTTLS, but only with a generic ``SMTPException``; checking here
        gives the operator an error that says what is wrong. Every failure is
        transient: it is the server's (or the operator's) to fix, not the
        message's.
        """
        where = f"{self._config.host}:{self._config.port}"
        try:
            await client.ehlo()
        except aiosmtplib.SMTPResponseException as exc:
            raise errors.TransientDeliveryError(
                f"STARTTLS required but {where} refused EHLO: {exc.message}; nothing was sent",
                smtp_code=exc.code,
            ) from exc
        if not client.supports_extension("starttls"):
            raise errors.TransientDeliveryError(
                f"STARTTLS required but {where} does not offer it; "
                "refusing to send in plaintext, nothing was sent"
            )
        try:
            await client.starttls()
        except aiosmtplib.SMTPResponseException as exc:
            raise errors.TransientDeliveryError(
                f"STARTTLS refused by {where}: {exc.message}; nothing was sent",
                smtp_code=exc.code,
            ) from exc

    def _connect_failure(self, exc: BaseException) -> errors.TransientDeliveryError:
        """A failed connect, saying so when TLS was the cause: that is the operator's to fix."""
        where = f"{self._config.host}:{self._config.port}"
        tls = _tls_error(exc)
        if isinstance(tls, ssl.SSLCertVerificationError):
            reason = (tls.verify_message or tls.reason or str(tls)).rstrip(".")
            return errors.TransientDeliveryError(
                f"TLS verification failed for {where}: {reason}; nothing was sent"
            )
        if tls is not None:
            return errors.TransientDeliveryError(
                f"TLS handshake failed with {where}: {tls.reason or tls}; nothing was sent"
            )
        return errors.TransientDeliveryError(f"cannot connect to the mail server: {exc}")


def _context_for(config: SmtpConfig) -> ssl.SSLContext:
    """The client TLS context, built once per transport (loading a trust store takes a while)."""
    if config.ca_file is None:
        return verifying_context(config.tls_context)
    if config.tls_context is not None:
        raise errors.ConfigurationError(
            "give either a CA file or a TLS context, not both", variable="NOTIFIER_SMTP_CA_FILE"
        )
    try:
        return ssl.create_default_context(cafile=str(config.ca_file))
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise errors.ConfigurationError(
            f"cannot load the SMTP CA file {str(config.ca_file)!r}: {exc}",
            variable="NOTIFIER_SMTP_CA_FILE",
        ) from exc


def verifying_context(context: ssl.SSLContext | None) -> ssl.SSLContext:
    """``context``, checked to verify certificates and host names; the system default if None."""
    if context is None:
        return ssl.create_default_context()
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise errors.ConfigurationError(
            "the SMTP TLS context must verify certificates and host names "
            "(verify_mode=CERT_REQUIRED, check_hostname=True)",
            variable="NOTIFIER_SMTP_CA_FILE",
        )
    return context


def _path(address: str) -> bytes:
    """``<address>`` as MAIL FROM and RCPT TO carry it; ``ValueError`` if SMTP cannot.

    A plain address (intake checked each one) is taken as it is; any other
    goes through aiosmtplib's own parsing and checks, as ``mail`` would.
    An address that is not ASCII raises ``UnicodeEncodeError`` (no SMTPUTF8).
    """
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return quote_address(address).encode("ascii")


def data_payload(message: bytes) -> bytes:
    """``message`` as DATA carries it: CRLF line ends, leading dots doubled, ended by ``.``.

    RFC 5321 section 4.5.2. A composed message (``CrlfMessage``) ends its
    lines with CRLF already; any other is checked, by three counts.
    """
    if not isinstance(message, CrlfMessage):
        crlf = message.count(b"\r\n")
        if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
            message = _LINE_END.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind ``exc`` (aiosmtplib wraps some in its own errors), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _classify(code: int, text: str) -> errors.DeliveryError:
    if 500 <= code < 600:
        return errors.PermanentDeliveryError(text, smtp_code=code)
    return errors.TransientDeliveryError(text, smtp_code=code)


async def _reset(connection: _Connection) -> None:
    try:
        await connection.client.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        await _discard(connection)


async def _discard(connection: _Connection) -> None:
    connection.client.close()


async def _quit(connection: _Connection) -> None:
    try:
        await connection.client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        connection.client.close()


def is_loopback(host: str) -> bool:
    """True for localhost names and 127.0.0.0/8 or ::1 addresses."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
