"""The development inbox: an embedded SMTP server that keeps mail instead of sending it.

Used when no SMTP host is configured, so a newcomer sees real mail from one
command. Each message is stored as an ``.eml`` file, newest listed first.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedMail:
    id: str
    received_at: datetime
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    def part(self, subtype: str) -> str | None:
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else None


class Inbox:
    """A folder of captured ``.eml`` files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, data: bytes) -> str:
        """Store one mail; only the owner may read it (it holds a customer's data)."""
        # Made with the first mail, not before: commands that never deliver leave no folder.
        self.folder.mkdir(mode=0o700, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        mail_id = f"{stamp}-{secrets.token_hex(4)}"
        descriptor = os.open(
            self.folder / f"{mail_id}.eml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
        )
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        return mail_id

    def list(self, limit: int = 200) -> list[CapturedMail]:
        files = sorted(self.folder.glob("*.eml"), reverse=True)[:limit]
        return [self._load(path) for path in files]

    def get(self, mail_id: str) -> CapturedMail | None:
        if not mail_id.replace("-", "").isalnum():
            return None
        path = self.folder / f"{mail_id}.eml"
        return self._load(path) if path.is_file() else None

    def _load(self, path: Path) -> CapturedMail:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        stamp = path.stem.split("-", 1)[0]
        received = datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
        return CapturedMail(path.stem, received, message)


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._inbox.keep(envelope.original_content or envelope.content)
        return "250 Message captured"


class CaptureServer:
    """Runs the embedded SMTP server on a free loopback port in its own thread."""

    def __init__(self, inbox: Inbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.inbox = inbox
        self.host = host
        self.port = port or _free_port(host)
        self._controller: Controller | None = None

    def start(self) -> tuple[str, int]:
        # Built here, not in __init__: aiosmtpd's controller opens an event loop at once,
        # and commands that never deliver should not hold one.
        self._controller = Controller(
            _Handler(inbox=self.inbox), hostname=self.host, port=self.port
        )
        self._controller.start()
        log.warning(
            "capture.started: DEVELOPMENT MODE, mail is kept in %s and shown at /dev/inbox, "
            "never delivered",
            self.inbox.folder,
        )
        return self.host, self.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
