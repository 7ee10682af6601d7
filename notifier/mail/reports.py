"""Reading what comes back to a bounce address: DSNs (RFC 3464), ARF complaints (RFC 5965).

A DSN's own ``message/delivery-status`` fields (Action, Status,
Diagnostic-Code) are read first: they say permanent or transient exactly.
Reports without them (older Exim, Qmail, vendor formats) go to
``flufl.bounce``'s detectors, which find the failed addresses by heuristics.
Auto-replies and anything else are classified as such and change nothing.
"""

from __future__ import annotations

import email
import email.message
import email.parser
import email.policy
from dataclasses import dataclass

from flufl.bounce import all_failures

HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
COMPLAINT = "complaint"
AUTO_REPLY = "auto_reply"
NOTICE = "notice"
"""A DSN that reports success (delivered, relayed, expanded)."""
UNPARSED = "unparsed"
CHANGES_NOTHING = (AUTO_REPLY, NOTICE, UNPARSED)

_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")


@dataclass(frozen=True)
class Report:
    kind: str
    status: str | None = None
    """The enhanced status code (``5.1.1``) of the first failed recipient."""
    diagnostic: str | None = None
    recipients: tuple[str, ...] = ()
    """The addresses the report is about (Final-Recipient, or found by flufl.bounce)."""
    message_ids: tuple[str, ...] = ()
    """The Message-ID of the original mail, where the report quotes it."""


def parse(data: bytes) -> Report:
    """Classify one report; never raises for malformed input (it is ``unparsed``)."""
    message = email.message_from_bytes(data)
    try:
        return _classify(message)
    except (LookupError, ValueError, TypeError, AttributeError):
        return Report(UNPARSED)


def _classify(message: email.message.Message) -> Report:
    originals = tuple(_original_message_ids(message))
    feedback = _part(message, "message/feedback-report")
    if feedback is not None:
        fields = _fields(feedback)
        recipients = [
            _address(block.get("Original-Rcpt-To", ""))
            for block in fields
            if block.get("Original-Rcpt-To")
        ]
        kind = (fields[0].get("Feedback-Type", "abuse") if fields else "abuse").strip().lower()
        return Report(
            COMPLAINT,
            diagnostic=f"feedback-type {kind}",
            recipients=tuple(recipients),
            message_ids=originals,
        )
    status_part = _part(message, "message/delivery-status")
    if status_part is not None:
        report = _from_delivery_status(status_part, originals)
        if report is not None:
            return report
    if _is_auto_reply(message):
        return Report(AUTO_REPLY, message_ids=originals)
    temporary, permanent = all_failures(message)
    if permanent:
        return Report(HARD_BOUNCE, recipients=_decoded(permanent), message_ids=originals)
    if temporary:
        return Report(SOFT_BOUNCE, recipients=_decoded(temporary), message_ids=originals)
    return Report(UNPARSED, message_ids=originals)


def _from_delivery_status(part: email.message.Message, originals: tuple[str, ...]) -> Report | None:
    """The report the per-recipient fields make: hard if any recipient failed with 5.x.x."""
    hard: list[tuple[str, str, str | None]] = []
    soft: list[tuple[str, str, str | None]] = []
    notices = 0
    for block in _fields(part):
        action = (block.get("Action") or "").strip().lower()
        if not action:
            continue  # the per-message block (Reporting-MTA, Arrival-Date)
        status = (block.get("Status") or "").strip().split(" ")[0]
        recipient = _address(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        diagnostic = _one_line(block.get("Diagnostic-Code"))
        entry = (recipient, status, diagnostic)
        if status.startswith("5") or (action == "failed" and not status.startswith("4")):
            hard.append(entry)
        elif status.startswith("4") or action == "delayed":
            soft.append(entry)
        else:
            notices += 1
    for kind, entries in ((HARD_BOUNCE, hard), (SOFT_BOUNCE, soft)):
        if entries:
            recipient, status, diagnostic = entries[0]
            return Report(
                kind,
                status=status or None,
                diagnostic=diagnostic,
                recipients=tuple(entry[0] for entry in entries if entry[0]),
                message_ids=originals,
            )
    return Report(NOTICE, message_ids=originals) if notices else None


def _part(message: email.message.Message, content_type: str) -> email.message.Message | None:
    for part in message.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _fields(part: email.message.Message) -> list[email.message.Message]:
    """The header blocks of a report part, however the parser laid them out."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, email.message.Message)]
    text = payload if isinstance(payload, str) else ""
    parser = email.parser.HeaderParser()
    return [
        parser.parsestr(block.strip() + "\n")
        for block in text.replace("\r\n", "\n").split("\n\n")
        if block.strip()
    ]


def _original_message_ids(message: email.message.Message) -> list[str]:
    """Message-IDs of the quoted original (``message/rfc822`` or ``text/rfc822-headers``)."""
    found: list[str] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, email.message.Message) and inner.get("Message-ID"):
                found.append(str(inner["Message-ID"]).strip())
        elif content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                headers = email.parser.BytesHeaderParser().parsebytes(payload)
                if headers.get("Message-ID"):
                    found.append(str(headers["Message-ID"]).strip())
    return found


def _is_auto_reply(message: email.message.Message) -> bool:
    auto = (message.get("Auto-Submitted") or "no").strip().lower()
    precedence = (message.get("Precedence") or "").strip().lower()
    return (
        auto != "no"
        or precedence in ("auto_reply", "auto-reply")
        or any(message.get(header) for header in _AUTO_HEADERS)
    )


def _address(field: str) -> str:
    """``rfc822; jan@example.nl`` → ``jan@example.nl``."""
    _, _, address = str(field).rpartition(";")
    return address.strip().strip("<>").strip()


def _one_line(value: object) -> str | None:
    return " ".join(str(value).split())[:500] if value else None


def _decoded(addresses: frozenset[bytes] | set[bytes]) -> tuple[str, ...]:
    return tuple(sorted(address.decode("utf-8", "replace") for address in addresses))
