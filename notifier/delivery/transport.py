"""SMTP delivery over a small pool of persistent aiosmtplib connections.

This is aiosmtplib's only home. Every failure leaves here classified:
``TransientDeliveryError`` (4xx replies, dropped connections, timeouts) or
``PermanentDeliveryError`` (5xx replies), keeping the SMTP code and text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from notifier import errors

log = logging.getLogger(__name__)
IDLE_LIMIT = 30.0
"""Seconds a pooled connection may sit unused before it is replaced (servers drop idle ones)."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: str = "starttls"  # "tls", "starttls" or "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    connections: int = 8
    allow_plaintext: bool = False
    tls_context: ssl.SSLContext | None = None


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    last_used: float


class SmtpTransport:
    """Sends raw messages; at most ``connections`` sessions at once, reused between sends."""

    def __init__(self, config: SmtpConfig) -> None:
        if config.tls == "none" and not config.allow_plaintext and not is_loopback(config.host):
            raise errors.ConfigurationError(
                f"refusing plaintext SMTP to non-loopback host {config.host!r}; "
                "use starttls/tls or set NOTIFIER_SMTP_ALLOW_PLAINTEXT=1",
                variable="NOTIFIER_SMTP_TLS",
            )
        self._config = config
        self._slots = asyncio.Semaphore(config.connections)
        self._idle: list[_Connection] = []

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> str:
        """Deliver ``data``; returns the server's final reply text."""
        async with self._slots:
            connection = await self._acquire()
            try:
                _refused, reply = await connection.client.sendmail(sender, list(recipients), data)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._release(connection)
                first = exc.recipients[0]
                raise _classify(first.code, first.message) from exc
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
            self._release(connection)
            return reply

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await _quit(connection)

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
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.tls == "tls",
            start_tls=config.tls == "starttls",
            validate_certs=True,
            tls_context=config.tls_context,
            timeout=config.timeout,
            username=config.username,
            password=config.password,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise errors.TransientDeliveryError(f"cannot connect to the mail server: {exc}") from exc
        return client


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
