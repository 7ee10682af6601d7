"""Messages one at a time: an ad-hoc send, a look-up, a cancel, a retry, the queue's state.

Events queue most mail (``intake``); this is what the shop, customer service
and an operator do with a message afterwards, or without an event. The
dispatcher is told about mail due now through ``wake``, so this module needs
nothing from ``delivery``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.flows import events as event_flows
from notifier.flows import kinds
from notifier.mail.assembly import Assembler
from notifier.recipient import Recipient
from notifier.schemas import MessageIn, MessageOut
from notifier.settings import Settings
from notifier.store import customers, outbox
from notifier.store.db import Database
from notifier.usecases.intake import Accepted, customer_details
from notifier.usecases.views import message_out, queued_out


@dataclass(frozen=True)
class QueueDepth:
    status: str
    category: str
    count: int


@dataclass(frozen=True)
class StatusReport:
    depth: list[QueueDepth]
    recent_errors: list[MessageOut]


@dataclass(frozen=True)
class FailedMessage:
    """A message that failed for good, as the development inbox lists it."""

    id: str
    kind: str
    reason: str | None
    last_error: str | None
    failed_at: datetime
    attempts: int


class Due(Protocol):
    """A message now due: enough to tell the dispatcher whether it takes the express lane."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...


log = logging.getLogger(__name__)


class Messages:
    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        assembler: Assembler,
        clock: Clock,
        settings: Settings,
        wake: Callable[..., None],
    ) -> None:
        """``wake(express=[ids])`` tells the dispatcher that mail is due, urgent ids named."""
        self._database = database
        self._sealer = sealer
        self._assembler = assembler
        self._clock = clock
        self._settings = settings
        self._wake = wake

    def send(self, request: MessageIn) -> Accepted:
        """Queue an ad-hoc message of any kind; its id is the idempotency key.

        The context must hold what the kind requires (the kinds table, as for
        events; 422 naming e.g. ``context.order.number``), and it is rendered
        once on the way in, so a context the template cannot use is refused
        now (422) rather than failing later.
        """
        kind = kinds.get(request.kind)
        now = self._clock.now()
        kinds.check([kind.name], request.context, prefix="context.")
        self._trial_render(request, kind)
        due = event_flows.scheduled_time(
            kind.name, max(request.send_at or now, now), self._settings
        )
        new = outbox.NewMessage(
            id=request.id,
            customer_id=request.to.id,
            kind=kind.name,
            category=kind.category,
            priority=kind.priority,
            send_after=due,
            context=request.context,
            created_at=now,
            order_id=_order_id(request.context),
        )
        try:
            with self._database.transaction() as session:
                existing = outbox.get(session, request.id)
                if existing is not None:
                    return Accepted(message_out(existing).model_dump(mode="json"), created=False)
                details = customer_details(request.to, self._settings, now)
                customers.upsert_all(session, self._sealer, [details])
                outbox.add(session, self._sealer, [new])
        except errors.Duplicate:
            return Accepted(self.get(request.id).model_dump(mode="json"), created=False)
        if new.send_after <= now:
            self.wake_for([new])
        return Accepted(queued_out(new).model_dump(mode="json"), created=True)

    def get(self, message_id: str) -> MessageOut:
        with self._database.transaction() as session:
            row = outbox.get(session, message_id)
            if row is None:
                raise errors.NotFound(f"no message {message_id!r}")
            return message_out(row)

    def cancel(self, message_id: str) -> MessageOut:
        with self._database.transaction() as session:
            return message_out(outbox.cancel(session, message_id, self._clock.now()))

    def retry(self, message_id: str) -> MessageOut:
        """Put one ``failed`` message back in the queue, due now (after a template fix, say).

        ``NotFound`` for an unknown id, ``Conflict`` for a message that is not
        ``failed``. Its attempts stay on record; consent is checked again when
        it is sent, as for any message.
        """
        with self._database.transaction() as session:
            retried = outbox.retry_failed(session, self._clock.now(), ids=[message_id])
            row = outbox.get(session, message_id)
            if row is None:
                raise errors.NotFound(f"no message {message_id!r}")
            if not retried:
                raise errors.Conflict(
                    f"message {message_id!r} is {row.status.value}; only failed mail is retried"
                )
            answer = message_out(row)
        self._retried(retried)
        return answer

    def retry_failed(
        self, *, since: timedelta | None = None, kind: str | None = None
    ) -> list[outbox.Retried]:
        """Put every ``failed`` message back, those that failed within ``since`` and of ``kind``."""
        if kind is not None:
            kinds.get(kind)
        now = self._clock.now()
        with self._database.transaction() as session:
            retried = outbox.retry_failed(
                session, now, failed_since=None if since is None else now - since, kind=kind
            )
        self._retried(retried)
        return retried

    def failed(self, limit: int = 100) -> list[FailedMessage]:
        """The messages that failed for good, the latest first: what to repair and retry."""
        with self._database.transaction() as session:
            return [
                FailedMessage(
                    row.id, row.kind, row.reason, row.last_error, row.updated_at, row.attempts
                )
                for row in outbox.failed(session, limit)
            ]

    def of_customer(self, customer_id: str) -> list[MessageOut]:
        """The customer's message history, newest first, for customer service."""
        with self._database.transaction() as session:
            return [message_out(row) for row in outbox.history(session, customer_id)]

    def depth(self) -> list[tuple[str, str, int]]:
        with self._database.transaction() as session:
            return outbox.depth(session)

    def status(self) -> StatusReport:
        with self._database.transaction() as session:
            depth = [QueueDepth(*row) for row in outbox.depth(session)]
            recent = [message_out(row) for row in outbox.recent_errors(session)]
        return StatusReport(depth, recent)

    def as_now(self, repeat: Accepted) -> Accepted:
        """A repeated event's first answer, each message in it as it stands now.

        The answer is stored once, when the event is accepted; by the time
        the shop asks again its mail may be sent, failed or retried. A
        message no longer on record (purged) keeps its first answer.
        """
        body = repeat.body
        earlier = body.get("messages") or []
        ids = [message["id"] for message in earlier]
        if not ids:
            return repeat
        with self._database.transaction() as session:
            now = {row.id: message_out(row) for row in outbox.get_many(session, ids)}
        messages = [
            now[message["id"]].model_dump(mode="json") if message["id"] in now else message
            for message in earlier
        ]
        return Accepted(body | {"messages": messages}, created=False)

    def wake_for(self, due: Sequence[Due]) -> None:
        """Wake the dispatcher for mail due now, naming the urgent ones for its express lane."""
        if due:
            self._wake(express=[message.id for message in due if kinds.get(message.kind).urgent])

    def _retried(self, retried: list[outbox.Retried]) -> None:
        """Log the retried messages and wake the dispatcher: they are due now."""
        for message in retried:
            log.info("message.retried message=%s kind=%s", message.id, message.kind)
        self.wake_for(retried)

    def _trial_render(self, request: MessageIn, kind: kinds.Kind) -> None:
        recipient = Recipient(
            request.to.id,
            str(request.to.email),
            request.to.name,
            request.to.locale or self._settings.default_locale,
            first_name=request.to.first_name,
        )
        try:
            self._assembler.assemble(request.id, kind.name, recipient, request.context)
        except errors.TemplateError as exc:
            raise errors.InvalidInput(
                f"the {kind.name} template cannot use it: {exc}", "context"
            ) from exc


def _order_id(context: Mapping[str, Any]) -> str | None:
    order = context.get("order")
    value = order.get("id") if isinstance(order, Mapping) else None
    return str(value)[:100] if value is not None else None
