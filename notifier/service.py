"""``Notifier``: the composition root that every adapter (HTTP, CLI, scheduler) calls.

It wires settings, store, mail and delivery together and offers the public
operations as plain methods, so a backend may embed the engine in-process
exactly as the HTTP API uses it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from notifier import errors, keyring, schemas
from notifier.clock import Clock, SystemClock
from notifier.crypto import Sealer
from notifier.delivery.capture import CaptureServer, Inbox
from notifier.delivery.dispatcher import DispatchConfig, Dispatcher, Transport
from notifier.delivery.transport import SmtpConfig, SmtpTransport
from notifier.flows import kinds
from notifier.mail import preflight
from notifier.mail.assembly import Assembler, MailSettings
from notifier.mail.compose import BodyEncoding
from notifier.mail.pool import RenderPool, default_processes
from notifier.recipient import Recipient
from notifier.runtime.bounce_listener import BounceListener
from notifier.runtime.metrics import Metrics
from notifier.schemas import EventIn, ImportOut, MessageIn, MessageOut
from notifier.settings import Settings
from notifier.store import customers, keystore, outbox, readiness, webhooks
from notifier.store.db import Database
from notifier.store.keystore import KeyStore
from notifier.store.models import FailureReason
from notifier.usecases import intake
from notifier.usecases.choices import Choices
from notifier.usecases.feedback import Feedback
from notifier.usecases.intake import Accepted as Accepted  # handle_event's answer, re-exported
from notifier.usecases.messages import FailedMessage as FailedMessage
from notifier.usecases.messages import Messages
from notifier.usecases.messages import StatusReport as StatusReport
from notifier.usecases.newsletters import Newsletters
from notifier.usecases.privacy import Privacy
from notifier.usecases.provider_feedback import ProviderFeedback
from notifier.usecases.subscriber_import import Confirm, Row, SubscriberImport

if TYPE_CHECKING:
    from notifier.delivery.webhooks import WebhookSender
    from notifier.mail.sns import SnsVerifier

log = logging.getLogger(__name__)
INBOX_FOLDER = ".notifier-inbox"


class Notifier:
    """The engine. Construct once per process; safe to call from several threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        transport: Transport | None = None,
        worker_name: str | None = None,
        read_only: bool = False,
    ) -> None:
        """With ``read_only`` (``notifier status``) nothing on disk is created: no key file
        and no render processes; the database is opened only if it exists."""
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.database = Database(settings.database_url)  # first: it checks the SQLite folder
        keys = keyring.resolve(settings, create=not read_only)
        self.secret_key = keys.secret_keys[0]
        self.keystore = KeyStore(
            settings.keystore_url
            or keystore.default_url(settings.database_url, self.database.sqlite_file),
            own_schema=settings.keystore_url is None,
        )
        self.sealer = Sealer(
            keys.encryption_keys,
            keys.secret_keys[-1],
            self.keystore,
            lambda: self.clock.now().timestamp(),
        )
        encoding = BodyEncoding()  # the relay's 8BITMIME, learnt by the transport
        mail_settings = MailSettings.of(settings)
        self.assembler = Assembler.from_settings(
            mail_settings, keys.secret_keys, self.clock, encoding
        )
        self.renderer = self.assembler.renderer
        self.preference_tokens = self.assembler.preference_tokens
        self.confirm_tokens = self.assembler.confirm_tokens
        processes = 0 if read_only else settings.render_processes
        if processes is None:
            processes = default_processes()
        self.render_pool = (
            RenderPool(
                mail_settings, keys.secret_keys, processes, settings.render_timeout, encoding
            )
            if processes
            else None
        )
        self.capture: CaptureServer | None = None
        if transport is None and settings.capture_mode:
            self.capture = CaptureServer(Inbox(settings.data_dir / INBOX_FOLDER))
            config = SmtpConfig("127.0.0.1", self.capture.port, tls="none")
            transport = SmtpTransport(config, encoding)  # aiosmtpd offers 8BITMIME too
        self.transport: Transport = transport or SmtpTransport(_smtp_config(settings), encoding)
        self.metrics = Metrics(
            self._queue_depth, self._webhook_depth, kinds.KINDS, (r.value for r in FailureReason)
        )
        owner = worker_name or f"{socket.gethostname()}:{secrets.token_hex(4)}"
        self.dispatcher = Dispatcher(
            self.database,
            self.sealer,
            self.assembler,
            self.transport,
            self.clock,
            DispatchConfig(
                owner=owner[:64],
                batch_size=settings.batch_size,
                lease=timedelta(seconds=settings.lease_seconds),
                heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout),
                retry_max_age=settings.retry_max_age,
                concurrency=settings.smtp_connections,
                webhooks=settings.webhook_url is not None,
            ),
            pool=self.render_pool,
            on_outcome=self.metrics.observe,
            on_failure=self.metrics.failed,
        )

        self.messages = Messages(
            self.database, self.sealer, self.assembler, self.clock, settings, self.dispatcher.wake
        )
        self.choices = Choices(
            self.database,
            self.sealer,
            self.preference_tokens,
            self.confirm_tokens,
            self.clock,
            settings.consent_text_version,
            webhooks_on=settings.webhook_url is not None,
        )
        self.privacy = Privacy(
            self.database, self.sealer, self.clock, timedelta(days=settings.retention_days)
        )
        self.newsletters = Newsletters(
            self.database, self.assembler, self.clock, settings, self.dispatcher.wake
        )
        self.intake = intake.EventIntake(
            self.database, self.sealer, settings, self.messages.wake_for
        )
        self.dropped_phones = intake.DroppedPhones(self.metrics.phone_dropped)
        self.subscriber_import = SubscriberImport(
            self.database,
            self.sealer,
            settings,
            self.clock.now,
            self.messages.wake_for,
            self.dropped_phones.note,
        )
        self.feedback = Feedback(
            self.database,
            self.sealer,
            self.clock,
            self.assembler.composer,
            webhooks_on=settings.webhook_url is not None,
        )
        self.provider_feedback = ProviderFeedback(
            self.feedback, _sns_verifier(settings), settings.postmark_webhook_token
        )
        self.webhook_sender: WebhookSender | None = None
        if settings.webhook_url is not None:
            # Imported only when configured: httpx costs every process's start (and every
            # render process's, which imports this module again) a fifth of a second.
            from notifier.delivery.webhooks import WebhookSender

            if settings.webhook_secret is None:
                raise errors.ConfigurationError(
                    "webhooks are signed: set the secret shared with the shop",
                    variable="NOTIFIER_WEBHOOK_SECRET",
                )
            self.webhook_sender = WebhookSender(
                self.database,
                self.clock,
                settings.webhook_url,
                settings.webhook_secret,
                settings.webhook_timeout,
                on_outcome=self.metrics.observe_webhook,
            )
        self.bounce_listener: BounceListener | None = None
        if settings.bounce_smtp_port is not None:
            if settings.bounce_domain is None:
                raise errors.ConfigurationError(
                    "the bounce listener needs the domain of its VERP addresses",
                    variable="NOTIFIER_BOUNCE_DOMAIN",
                )
            self.bounce_listener = BounceListener(
                self.feedback, settings.bounce_smtp_host, settings.bounce_smtp_port
            )

    # -- lifecycle ---------------------------------------------------------------

    def upgrade_database(self) -> None:
        self.database.upgrade()

    def check_keystore(self) -> None:
        """Refuse to run when the database holds data-key tokens but the key store holds no key.

        A lost or misplaced key store (a wrong ``NOTIFIER_KEYSTORE_URL``, a
        file not restored) would otherwise make every customer read as erased.
        """
        with self.database.transaction() as session:
            sealed = customers.has_data_key_tokens(session)
        if sealed and self.keystore.count() == 0:
            where = self.keystore.sqlite_file or "the configured database"
            raise errors.ConfigurationError(
                f"{keystore.VARIABLE}: the key store ({where}) holds no data key, but the database "
                "holds data sealed with data keys: point it at the key store, or restore it",
                variable=keystore.VARIABLE,
            )

    def preflight(self) -> list[str]:
        """Why this engine could not make mail, as ``path:line: message``; empty when it can.

        Compiles every template in every locale (the caches ``start`` warms);
        ``serve`` and ``worker`` refuse to start on any answer.
        """
        return preflight.problems(self.renderer)

    async def start(self) -> None:
        """Prepare to deliver in this process: capture server, render processes, templates, loop."""
        if self.capture is not None:
            self.capture.start()
        if self.bounce_listener is not None:
            self.bounce_listener.start()
        if self.render_pool is not None:
            self.render_pool.warm()
        # The express lane renders here, and a customer waits for its first mail.
        await asyncio.to_thread(self.renderer.compile_all)
        self.dispatcher.bind(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Finish sends in flight, hand back leases, close connections, end the render processes.

        The render processes end here rather than in ``close``: ``serve`` may
        be ended by its signal right after the app's shutdown, before ``close``.
        """
        await self.dispatcher.stop()
        await self.transport.close()
        if self.capture is not None:
            self.capture.stop()
        if self.bounce_listener is not None:
            self.bounce_listener.stop()
        if self.render_pool is not None:
            await asyncio.to_thread(self.render_pool.close)

    def close(self) -> None:
        """Release what the engine holds: events still waiting are committed first."""
        self.intake.close()
        if self.render_pool is not None:
            self.render_pool.close()
        self.database.dispose()
        self.keystore.dispose()

    async def dispatch_due(self) -> int:
        """Deliver every message due now; returns how many were handled."""
        return await self.dispatcher.run_once()

    async def purge_expired(self) -> int:
        """Retention: drop old finished messages' context (run by the scheduler)."""
        return await asyncio.to_thread(self.privacy.purge_expired)

    async def deliver_webhooks(self) -> int:
        """Send the webhook events due now (run by the scheduler); returns how many arrived."""
        if self.webhook_sender is None:
            return 0
        return await self.webhook_sender.run_once()

    def replay_webhooks(self, since: timedelta) -> int:
        """Queue again every webhook event recorded in the last ``since``; returns how many."""
        now = self.clock.now()
        with self.database.transaction() as session:
            return webhooks.replay(session, now - since, now)

    async def advance_campaigns(self) -> int:
        """Open due campaign runs and fan them out; returns how many messages were queued."""
        return await asyncio.to_thread(self.newsletters.advance)

    # -- the shop backend's operations ------------------------------------------

    def handle_event(self, data: EventIn | Mapping[str, Any]) -> Accepted:
        """Accept a shop event once: queue its mail, cancel what it cancels.

        The same event id again returns the first answer, its messages as
        they stand now, and changes nothing, also when both arrive at the
        same moment. Concurrent calls are
        committed together (see ``notifier.store.group_commit``); this returns once the
        event's transaction is on disk.
        """
        event = schemas.parsed(EventIn, data)
        self.dropped_phones.note(event, event.id)
        try:
            arrival = intake.Arrival(event, self.clock.now())
            accepted = self.intake.submit(arrival).result().accepted
        except errors.Duplicate:
            accepted = Accepted(self.intake.earlier_answer(event.id), created=False)
        return accepted if accepted.created else self.messages.as_now(accepted)

    async def handle_event_async(self, data: EventIn | Mapping[str, Any]) -> Accepted:
        """``handle_event`` for an event loop: waits for the commit without holding a thread."""
        event = schemas.parsed(EventIn, data)
        self.dropped_phones.note(event, event.id)
        try:
            written = await asyncio.wrap_future(
                self.intake.submit(intake.Arrival(event, self.clock.now()))
            )
        except errors.Duplicate:
            earlier = await asyncio.to_thread(self.intake.earlier_answer, event.id)
            return await asyncio.to_thread(self.messages.as_now, Accepted(earlier, created=False))
        if written.accepted.created:
            return written.accepted
        return await asyncio.to_thread(self.messages.as_now, written.accepted)

    def send_message(self, data: MessageIn | Mapping[str, Any]) -> Accepted:
        """Queue an ad-hoc message of any kind; its id is the idempotency key.

        The context must hold what the kind requires (422 naming e.g.
        ``context.order.number``) and must render: it is tried on the way in.
        """
        request = schemas.parsed(MessageIn, data)
        self.dropped_phones.note(request, request.id)
        return self.messages.send(request)

    def import_subscribers(self, rows: Iterable[Row], confirm: Confirm = "none") -> ImportOut:
        """Bring in subscribers with the consent proof of the shop's previous tool.

        ``rows`` are (line, row) pairs as ``usecases.subscriber_import`` reads
        them from NDJSON, CSV or a JSON list. Rows with proof become confirmed
        subscribers, that proof on record; rows without it unconfirmed
        customers, sent the double opt-in mail when ``confirm`` is ``send``
        (or the row says so). Refused rows are named in the answer; the
        others are in. Importing the same rows again changes nothing.
        """
        return self.subscriber_import.run(rows, confirm)

    def get_message(self, message_id: str) -> MessageOut:
        return self.messages.get(message_id)

    def cancel_message(self, message_id: str) -> MessageOut:
        return self.messages.cancel(message_id)

    def retry_message(self, message_id: str) -> MessageOut:
        """Put one ``failed`` message back in the queue, due now; see ``Messages.retry``."""
        return self.messages.retry(message_id)

    def retry_failed(
        self, *, since: timedelta | None = None, kind: str | None = None
    ) -> list[outbox.Retried]:
        """Put every ``failed`` message back, those that failed within ``since`` and of ``kind``."""
        return self.messages.retry_failed(since=since, kind=kind)

    def failed_messages(self, limit: int = 100) -> list[FailedMessage]:
        """The messages that failed for good, the latest first: what to repair and retry."""
        return self.messages.failed(limit)

    def customer_messages(self, customer_id: str) -> list[MessageOut]:
        """The customer's message history, newest first, for customer service."""
        return self.messages.of_customer(customer_id)

    def check_ready(self) -> None:
        """Raise ``ServiceUnavailable`` unless the database takes a write now (``/readyz``)."""
        readiness.probe(self.database, self.clock.now())

    def _queue_depth(self) -> list[tuple[str, str, int]]:
        return self.messages.depth()

    def _webhook_depth(self) -> list[tuple[str, int]]:
        with self.database.transaction() as session:
            return webhooks.depth(session)

    def status(self) -> StatusReport:
        return self.messages.status()

    async def send_test(
        self, kind: str, to_email: str, locale: str, context: Mapping[str, Any]
    ) -> str:
        """Render ``kind`` with ``context`` and send it to ``to_email`` now, marked as a test.

        Nothing is queued or recorded; returns the Message-ID. A refusal by
        the server raises ``DeliveryError``.
        """
        recipient = Recipient("test", to_email, None, locale)
        letter = self.assembler.assemble(
            f"test-{secrets.token_hex(8)}", kind, recipient, dict(context), test=True
        )
        envelope = letter.envelope
        try:
            await self.transport.send(envelope.sender, envelope.recipients, envelope.data)
        finally:
            await self.transport.close()
        return envelope.message_id

    async def send_campaign_test(
        self, campaign_id: str, to: Sequence[str], locale: str | None
    ) -> list[dict[str, str]]:
        """Send campaign ``campaign_id``'s real mail, marked as a test, to each of ``to``.

        Nothing is queued or recorded; returns each address with its Message-ID.
        """
        letters = self.newsletters.test_letters(campaign_id, to, locale)
        sent = []
        try:
            for address, letter in zip(to, letters, strict=True):
                envelope = letter.envelope
                await self.transport.send(envelope.sender, envelope.recipients, envelope.data)
                sent.append(
                    {"to": address, "locale": letter.locale, "message_id": envelope.message_id}
                )
        finally:
            await self.transport.close()
        return sent


def _sns_verifier(settings: Settings) -> SnsVerifier | None:
    """The SNS signature check that enables ``/v1/feedback/ses``, if its certificate is set."""
    if settings.ses_sns_cert_file is None:
        return None
    from notifier.mail.sns import SnsVerifier  # cryptography's X.509 only when configured

    return SnsVerifier(settings.ses_sns_cert_file, settings.ses_topic_arns)


def _smtp_config(settings: Settings) -> SmtpConfig:
    assert settings.smtp_host is not None
    default_port = {"tls": 465, "starttls": 587, "none": 25}[settings.smtp_tls]
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port or default_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout=settings.smtp_timeout,
        connections=settings.smtp_connections,
        allow_plaintext=settings.smtp_allow_plaintext,
        ca_file=settings.smtp_ca_file,
        rate=settings.smtp_rate,
        rate_burst=settings.smtp_rate_burst,
    )
