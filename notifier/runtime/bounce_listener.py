"""The bounce listener: an SMTP server (aiosmtpd) that takes reports for VERP addresses only.

Point the bounce domain's MX at it, or have the relay hand mail for that
domain to it (see docs/feedback.md). A recipient that is not a VERP address
this notifier signed is refused at RCPT (550), so the listener is no open
mailbox; the report itself is read and applied in a thread, off the
server's loop. A database that cannot be reached answers 451, so the
reporting MTA tries again later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller

from notifier import errors
from notifier.usecases.feedback import Feedback

log = logging.getLogger(__name__)
MAX_REPORT_BYTES = 10 * 1024 * 1024


class _Handler:
    def __init__(self, feedback: Feedback) -> None:
        self._feedback = feedback

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not self._feedback.accepts(address):
            log.info("bounce_listener.refused_recipient")
            return "550 5.1.1 no such bounce address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        try:
            await asyncio.to_thread(self._feedback.receive_mail, list(envelope.rcpt_tos), data)
        except errors.ServiceUnavailable:
            log.warning("bounce_listener.database_unavailable")
            return "451 4.3.0 try again later"
        except Exception:
            log.exception("bounce_listener.crashed")
            return "451 4.3.0 try again later"
        return "250 OK report received"


class BounceListener:
    """Runs the listener in its own thread (aiosmtpd's controller), started and stopped."""

    def __init__(self, feedback: Feedback, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._feedback = feedback
        self._controller: Controller | None = None

    def start(self) -> bool:
        """Listen; False when the port is taken, as by another process of this host.

        One listener per host is enough (reports are applied through the
        shared database), so the second ``serve --workers`` process or a
        second ``worker`` goes on without one rather than failing to start.
        """
        controller = Controller(
            _Handler(self._feedback),
            hostname=self.host,
            port=self.port,
            data_size_limit=MAX_REPORT_BYTES,
        )
        try:
            controller.start()
        except OSError as exc:
            controller.loop.close()  # aiosmtpd leaves the loop of a failed start open
            log.warning("bounce_listener.not_started port=%d error=%s", self.port, exc.strerror)
            return False
        self._controller = controller
        log.info("bounce_listener.started port=%d", self.port)
        return True

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
