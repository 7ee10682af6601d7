"""Fault injection for the failure tests: a misbehaving SMTP server, a TCP proxy that cuts the
database off, and readers for what the outbox and the mail server saw.

The promise under test is Postfix's: a message accepted into the queue survives any crash and
is retried until delivered or expired. Proving it needs faults that happen for real (sockets
closed, processes killed, backends terminated), so these helpers make them happen, and then
compare the server's view (one Message-ID per outbox id, derived deterministically) with the
outbox's own record.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import select

from notifier.crypto import Sealer
from notifier.delivery import retry
from notifier.store import customers, outbox
from notifier.store.db import Database
from notifier.store.models import DeliveryAttempt, Message, MessageStatus
from tests.conftest import TEST_ENCRYPTION_KEY, order
from tests.smtpd import ClosingController, Received, RecordingHandler, SmtpServer, free_port

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


# -- a mail server that misbehaves on purpose -------------------------------------------


@dataclass
class Chaos:
    """Shares of DATA commands answered badly, drawn from a seeded generator (reproducible)."""

    transient: float = 0.0
    """Answered ``451`` or ``421`` (the latter also closes the session, as Postfix does)."""
    drop: float = 0.0
    """The connection is closed after the data arrived, before any reply: a drop mid-DATA."""
    seed: int = 6


@dataclass
class Faults:
    """What the handler does wrong; tests change it while the server runs."""

    chaos: Chaos = field(default_factory=Chaos)
    delay: float = 0.0
    """Seconds to wait before answering DATA: a slow server, so sends are in flight."""
    stall: float = 0.0
    stall_count: int = 0
    """The next ``stall_count`` DATA commands wait ``stall`` seconds before answering."""
    reject: frozenset[str] = frozenset()
    """Recipients refused with ``550 5.7.1`` at RCPT: a permanent failure."""


class FaultyHandler(RecordingHandler):
    """Records what it accepts, like the shared handler, but fails as ``faults`` say.

    A message is recorded only once the server answers 250 to a client that is still there:
    a stalled DATA whose client gave up is not accepted. (A real server may already have
    queued it: RFC 1047's duplicate; operations.md says so.)
    """

    def __init__(self, faults: Faults | None = None) -> None:
        super().__init__()
        self.faults = faults or Faults()
        self._random = random.Random(self.faults.chaos.seed)
        self.data_commands = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.faults.reject:
            return "550 5.7.1 message refused by policy"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        faults = self.faults
        with self.lock:
            self.data_commands += 1
            stall = faults.stall_count > 0
            if stall:
                faults.stall_count -= 1
            draw, which = self._random.random(), self._random.random()
        if stall:
            await asyncio.sleep(faults.stall)
        elif faults.delay:
            await asyncio.sleep(faults.delay)
        chaos = faults.chaos
        if draw < chaos.drop:
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if draw < chaos.drop + chaos.transient:
            return "451 4.3.0 try again later" if which < 0.5 else "421 4.7.0 busy"
        if server.transport is None or server.transport.is_closing():
            return "421 4.4.2 client gone"
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 OK queued"


class FaultySmtpServer(SmtpServer):
    """The shared test server with a ``FaultyHandler``; not listening until ``start``."""

    handler: FaultyHandler

    def __init__(self, faults: Faults | None = None) -> None:
        self.handler = FaultyHandler(faults)
        self.faults = self.handler.faults
        self.port = free_port()
        self.host = "127.0.0.1"
        self._controller = ClosingController(self.handler, hostname=self.host, port=self.port)

    def start(self) -> FaultySmtpServer:
        super().start()
        return self


def message_id_counts(server: SmtpServer) -> Counter[str]:
    """How often each Message-ID arrived; reads the header bytes only (fast for thousands)."""
    counts: Counter[str] = Counter()
    for item in server.received:
        head = item.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        assert found is not None, head[:500]
        counts[found.group(1).decode()] += 1
    return counts


# -- the outbox as the tests see it -----------------------------------------------------


def queue_messages(
    database: Database, count: int, now: datetime, *, prefix: str = "m", shared: int = 0
) -> list[str]:
    """Queue ``count`` order confirmations due at ``now``, one customer (and address) each,
    or, with ``shared``, spread over that many customers.

    Distinct addresses let a test tell from the server's side which message arrived.
    """
    sealer = Sealer([TEST_ENCRYPTION_KEY], "test-secret-key")
    context = {"order": order(), "data": {}}
    ids = [f"{prefix}-{index}" for index in range(count)]
    owners = [f"C{index % shared}" if shared else f"C-{ids[index]}" for index in range(count)]
    with database.transaction() as session:
        for index, customer_id in enumerate(dict.fromkeys(owners)):
            customers.upsert(
                session,
                sealer,
                customer_id=customer_id,
                email=f"customer{index}@example.nl" if shared else address(index),
                name=f"Klant {index}",
                locale="nl" if index % 2 else "en",
                now=now,
            )
        outbox.add(
            session,
            sealer,
            [
                outbox.NewMessage(
                    id=message_id,
                    customer_id=owner,
                    kind="order_confirmation",
                    category="order_updates",
                    send_after=now,
                    context=context,
                    created_at=now,
                )
                for message_id, owner in zip(ids, owners, strict=True)
            ],
        )
    return ids


def queue_due_messages(url: str, count: int) -> None:
    """Queue ``count`` due order confirmations for 100 customers: a backlog for workers."""
    database = Database(url)
    database.upgrade()
    queue_messages(database, count, datetime.now(UTC), prefix="bulk", shared=100)
    database.dispose()


def address(index: int) -> str:
    return f"klant{index}@example.nl"


@dataclass
class OutboxState:
    """A snapshot of the outbox: statuses, leases, Message-IDs and the attempt log."""

    status: dict[str, str]
    attempts: dict[str, int]
    leased: set[str]
    """Messages ``sending`` with a lease: what a worker holds right now."""
    released: set[str]
    """Messages given back untried by a graceful stop: scheduled, never attempted, yet claimed."""
    by_message_id: dict[str, str]
    """Message-ID header → outbox id, for every message recorded as sent."""
    outcomes: dict[str, list[str]]
    """The attempt log's outcomes per message, in order."""

    @property
    def lease_expired(self) -> set[str]:
        return {key for key, seen in self.outcomes.items() if "lease_expired" in seen}

    def with_status(self, status: str) -> set[str]:
        return {key for key, value in self.status.items() if value == status}


def outbox_state(url: str) -> OutboxState:
    """Read the whole outbox of the database at ``url`` (a short-lived engine of its own)."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    Message.id,
                    Message.status,
                    Message.attempts,
                    Message.lease_expires_at,
                    Message.first_attempt_at,
                    Message.created_at,
                    Message.updated_at,
                    Message.message_id,
                )
            ).all()
            log = connection.execute(
                select(DeliveryAttempt.message_id, DeliveryAttempt.outcome).order_by(
                    DeliveryAttempt.message_id, DeliveryAttempt.attempt, DeliveryAttempt.id
                )
            ).all()
    finally:
        engine.dispose()
    outcomes: dict[str, list[str]] = {}
    for message_id, outcome in log:
        outcomes.setdefault(message_id, []).append(outcome)
    return OutboxState(
        status={row.id: MessageStatus(row.status).value for row in rows},
        attempts={row.id: row.attempts for row in rows},
        leased={
            row.id
            for row in rows
            if row.status == MessageStatus.SENDING and row.lease_expires_at is not None
        },
        released={
            row.id
            for row in rows
            # Claimed and given back: touched since it was queued (a release forgets the
            # claim's first_attempt_at, so that no longer tells).
            if row.status == MessageStatus.SCHEDULED
            and row.attempts == 0
            and row.updated_at > row.created_at
        },
        by_message_id={row.message_id: row.id for row in rows if row.message_id},
        outcomes=outcomes,
    )


def count_sent(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(sqlalchemy.func.count()).where(Message.status == MessageStatus.SENT)
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Duplicates:
    """What the server received more than once, by outbox id."""

    delivered: set[str]
    twice: dict[str, int]

    @property
    def extra(self) -> int:
        """Mails beyond one per message."""
        return sum(count - 1 for count in self.twice.values())


def reconcile(server: SmtpServer, state: OutboxState) -> Duplicates:
    """Match every mail the server accepted to its outbox message (each must have one)."""
    counts = message_id_counts(server)
    unknown = set(counts) - set(state.by_message_id)
    assert not unknown, f"the server got mail the outbox does not call sent: {sorted(unknown)[:5]}"
    delivered = {state.by_message_id[key] for key in counts}
    twice = {state.by_message_id[key]: count for key, count in counts.items() if count > 1}
    return Duplicates(delivered, twice)


# -- worker processes -------------------------------------------------------------------


def graceful_stop(worker: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> float:
    """SIGTERM ``worker`` and wait; returns how long it took, failing with its log unless 0."""
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=timeout)
    assert code == 0, log.read_text()[-3000:]
    return time.monotonic() - began


def kill(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no handler runs, no outcome is written, leases stay as they were."""
    worker.kill()
    worker.wait(timeout=30)


# -- backoff bound ----------------------------------------------------------------------


def most_attempts(elapsed: timedelta) -> int:
    """The most attempts the retry policy allows within ``elapsed`` of the first one.

    Each wait is at least ``(1 - JITTER)`` of the schedule (1 min doubling to 1 h), so more
    attempts than this in that time would mean a retry came early: a hot loop.
    """
    attempts, waited = 1, timedelta(0)
    while True:
        step = min(retry.FIRST_DELAY * 2 ** (attempts - 1), retry.LONGEST_DELAY)
        step *= 1 - retry.JITTER
        if waited + step > elapsed:
            return attempts
        waited += step
        attempts += 1


# -- the database going away ------------------------------------------------------------


class TcpProxy:
    """Forwards a local port to ``target``; ``cut`` severs every connection and refuses new
    ones (accepted, then closed at once) until ``restore``. The database "goes away" for the
    engine behind it, exactly as when a server restarts or a network path fails.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._accepting.start()

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self.cut()
        _close(self._listener)
        self._accepting.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            if not self._up.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=10)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, sink}
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    """Shut down first: that wakes a thread blocked in ``recv`` or ``accept`` on it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def via_proxy(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the local proxy's."""
    parsed = sqlalchemy.make_url(url).set(host="127.0.0.1", port=port)
    return parsed.render_as_string(hide_password=False)


def with_application_name(url: str, name: str) -> str:
    """``url`` whose connections call themselves ``name`` in ``pg_stat_activity``."""
    parsed = sqlalchemy.make_url(url).update_query_dict({"application_name": name})
    return parsed.render_as_string(hide_password=False)


def terminate_backends(admin_url: str, application_name: str) -> int:
    """Kill every PostgreSQL backend of ``application_name``; returns how many."""
    engine = sqlalchemy.create_engine(admin_url)
    try:
        with engine.begin() as connection:
            killed = connection.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = :name"
                ),
                {"name": application_name},
            ).all()
    finally:
        engine.dispose()
    return sum(1 for (done,) in killed if done)
