"""The one place a message becomes ``MessageOut``, the answer every adapter shows."""

from __future__ import annotations

from datetime import UTC

from notifier.schemas import MessageOut
from notifier.store import outbox
from notifier.store.models import Message
from notifier.vocabulary import MessageStatus


def message_out(row: Message) -> MessageOut:
    """A stored message as it stands now."""
    return MessageOut(
        id=row.id,
        kind=row.kind,
        category=row.category,
        status=row.status,
        send_after=row.send_after,
        attempts=row.attempts,
        last_error=row.last_error,
        reason=row.reason,
        sent_at=row.sent_at,
        created_at=row.created_at,
        order_id=row.order_id,
    )


def queued_out(message: outbox.NewMessage) -> MessageOut:
    """A message just queued, answered before it is read back."""
    return MessageOut(
        id=message.id,
        kind=message.kind,
        category=message.category,
        status=MessageStatus.SCHEDULED,
        send_after=message.send_after.astimezone(UTC),
        created_at=message.created_at,
        order_id=message.order_id,
    )
