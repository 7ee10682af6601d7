"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) whose replies the test can script."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

MESSAGE = (
    b"From: Winparts <service@winparts.example>\r\n"
    b"To: Jan <jan@example.nl>\r\n"
    b"Subject: test\r\n"
    b"Message-ID: <1@winparts.example>\r\n"
    b"\r\n"
    b"Hallo Jan\r\n"
)
"""A minimal valid message, for transport tests that need bytes, not a rendered mail."""
SENDER = "service@winparts.example"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class FaultPlan:
    """Replies to give instead of 250, consumed one per DATA; ``"drop"`` closes the connection."""

    replies: deque[str] = field(default_factory=deque)
    stall_seconds: float = 0.0


class RecordingHandler:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.plan = FaultPlan()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.plan.stall_seconds:
            await asyncio.sleep(self.plan.stall_seconds)
        with self.lock:
            reply = self.plan.replies.popleft() if self.plan.replies else None
        if reply == "drop":
            server.transport.close()
            return "421 closing"
        if reply is not None:
            return reply
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 OK queued"


class ClosingController(Controller):
    """A Controller that can close the sessions still open when it stops.

    aiosmtpd's ``Controller.stop()`` closes its listening socket and its loop but
    not the connections still open on it: a STARTTLS session's socket is left
    to the garbage collector, whose ``ResourceWarning: unclosed transport``
    then fails whichever later test happens to be running.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        session = self.session()
        self._sessions.append(session)
        return session

    def session(self) -> SMTP:
        """A new session; a subclass gives its own ``SMTP`` class here."""
        return SMTP(self.handler, **self.SMTP_kwargs)

    async def _abort_sessions(self) -> None:
        """Runs on the server's loop; one turn lets the transports finish closing."""
        for session in self._sessions:
            for transport in (session._original_transport, session.transport):
                if isinstance(transport, asyncio.Transport):
                    transport.abort()
        await asyncio.sleep(0)

    def stop(self, no_assert: bool = False) -> None:
        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._abort_sessions(), self.loop).result()
        super().stop(no_assert)


class SmtpServer:
    """Started by a fixture; ``received`` holds what it accepted."""

    def __init__(self, **controller_kwargs: Any) -> None:
        self.handler = RecordingHandler()
        self.port = free_port()
        self.host = "127.0.0.1"
        self._controller = ClosingController(
            self.handler, hostname=self.host, port=self.port, **controller_kwargs
        )

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stops the server and every session still open on it (see ``ClosingController``)."""
        self._controller.stop()

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def fail_next(self, *replies: str) -> None:
        with self.handler.lock:
            self.handler.plan.replies.extend(replies)

    def count_by_message_id(self) -> Counter[str]:
        return Counter(str(item.message["Message-ID"]) for item in self.received)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def body_of(message: EmailMessage, subtype: str) -> str:
    """The ``text/<subtype>`` part of a received mail; fails the test if it has none."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    content: str = part.get_content()
    return content
