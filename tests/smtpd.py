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


class SmtpServer:
    """Started by a fixture; ``received`` holds what it accepted."""

    def __init__(self, **controller_kwargs: Any) -> None:
        self.handler = RecordingHandler()
        self.port = free_port()
        self.host = "127.0.0.1"
        self._controller = Controller(
            self.handler, hostname=self.host, port=self.port, **controller_kwargs
        )

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        # Let the server's loop finish closing sessions a client just quit; stopping it at
        # once would leave their sockets half-closed (a ResourceWarning at garbage collection).
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), self._controller.loop).result()
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
