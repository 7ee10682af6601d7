"""Provider feedback events (Amazon SES through SNS, Postmark) read as the same ``Report``s.

Each event becomes a report (what happened, to which addresses) and the
Message-IDs it names, so ``usecases.feedback`` applies one set of rules
whatever the path. SES quotes the original Message-ID in
``mail.commonHeaders``; Postmark's own ``MessageID`` is its id, not ours, so
its events are matched by a ``Message-ID`` in their ``Metadata``, or by the
original's Message-ID in the bounce or abuse report quoted in ``Content``
(with "include bounce content" on), and otherwise act on the address alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notifier import errors
from notifier.mail import reports

SES = "ses"
POSTMARK = "postmark"
SUBSCRIPTION = "subscription"
"""An SNS subscription to confirm (its SubscribeURL is kept for the operator to open)."""

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError"}


@dataclass(frozen=True)
class Event:
    report: reports.Report
    message_ids: tuple[str, ...]


def ses(notification: Mapping[str, Any]) -> Event:
    """An SES notification (the JSON in an SNS ``Message``), in the feedback or the event form."""
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    mail = _mapping(notification.get("mail"))
    common = _mapping(mail.get("commonHeaders"))
    ids = [str(common["messageId"])] if common.get("messageId") else []
    for header in mail.get("headers") or []:
        if isinstance(header, Mapping) and str(header.get("name", "")).lower() == "message-id":
            ids.append(str(header.get("value", "")))
    if kind == "Bounce":
        bounce = _mapping(notification.get("bounce"))
        recipients = [_mapping(item) for item in bounce.get("bouncedRecipients") or []]
        first = recipients[0] if recipients else {}
        kind_of = {"Permanent": reports.HARD_BOUNCE, "Transient": reports.SOFT_BOUNCE}
        return Event(
            reports.Report(
                kind_of.get(str(bounce.get("bounceType")), reports.UNPARSED),
                status=str(first["status"]) if first.get("status") else None,
                diagnostic=str(first.get("diagnosticCode") or bounce.get("bounceSubType") or "")
                or None,
                recipients=_addresses(recipients),
            ),
            tuple(dict.fromkeys(ids)),
        )
    if kind == "Complaint":
        complaint = _mapping(notification.get("complaint"))
        recipients = [_mapping(item) for item in complaint.get("complainedRecipients") or []]
        feedback_type = complaint.get("complaintFeedbackType") or "abuse"
        return Event(
            reports.Report(
                reports.COMPLAINT,
                diagnostic=f"feedback-type {feedback_type}",
                recipients=_addresses(recipients),
            ),
            tuple(dict.fromkeys(ids)),
        )
    return Event(reports.Report(reports.NOTICE), tuple(dict.fromkeys(ids)))


def postmark(record: Mapping[str, Any]) -> Event:
    """A Postmark bounce or spam-complaint webhook."""
    record_type = str(record.get("RecordType") or "")
    bounce_type = str(record.get("Type") or "")
    address = str(record.get("Email") or record.get("Recipient") or "")
    recipients = (address,) if "@" in address else ()
    ids = _postmark_ids(record)
    if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
        return Event(
            reports.Report(
                reports.COMPLAINT, diagnostic="postmark spam complaint", recipients=recipients
            ),
            ids,
        )
    if record_type != "Bounce":
        return Event(reports.Report(reports.NOTICE), ids)
    if bounce_type in _POSTMARK_HARD:
        kind = reports.HARD_BOUNCE
    elif bounce_type in _POSTMARK_SOFT:
        kind = reports.SOFT_BOUNCE
    elif bounce_type == "AutoResponder":
        kind = reports.AUTO_REPLY
    else:
        kind = reports.UNPARSED
    details = str(record.get("Details") or record.get("Description") or bounce_type)
    return Event(
        reports.Report(
            kind, diagnostic=f"postmark {bounce_type}: {details}", recipients=recipients
        ),
        ids,
    )


def _postmark_ids(record: Mapping[str, Any]) -> tuple[str, ...]:
    ids: list[str] = []
    metadata = _mapping(record.get("Metadata"))
    for key in ("Message-ID", "message_id", "message-id"):
        if metadata.get(key):
            ids.append(str(metadata[key]))
    content = record.get("Content")
    if isinstance(content, str) and content:
        ids.extend(reports.parse(content.encode("utf-8", "replace")).message_ids)
    return tuple(dict.fromkeys(ids))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _addresses(recipients: list[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(
        str(item["emailAddress"]) for item in recipients if "@" in str(item.get("emailAddress", ""))
    )


def require_object(value: object, provider: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise errors.InvalidInput(f"a {provider} event is a JSON object", "body")
    return value
