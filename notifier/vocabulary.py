"""The words notifier's states are spoken in: one enum each, the values the API's strings.

Every layer imports these, none defines its own copy: a category, a status
or a reason spelled as a bare string elsewhere is a bug waiting for a typo.
"""

from __future__ import annotations

import enum


class Category(enum.StrEnum):
    """What a mail is about, and so what a customer may turn off (CONTRACT §2)."""

    ORDER_UPDATES = "order_updates"
    REVIEWS = "reviews"
    NEWSLETTER = "newsletter"
    SERVICE = "service"
    """Essential: the verification question and the double opt-in; never turned off."""


class MessageStatus(enum.StrEnum):
    """A message's place in its life; the values are the API's strings."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    BOUNCED = "bounced"
    """Accepted by the relay, then reported undeliverable (a DSN or a provider's bounce)."""


class FailureReason(enum.StrEnum):
    """Why a message ended ``failed``: a closed vocabulary, kept in its ``reason`` and in metrics.

    ``last_error`` holds the detail (file and line, the server's reply); this
    is the class of failure an operator alerts on and repairs by.
    """

    RENDER = "render"
    """The template could not be rendered with the message's data: fix it, then retry."""
    SMTP_PERMANENT = "smtp_permanent"
    """The server refused the message for good (a 5xx reply)."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """Transient failures (4xx replies, no connection) went on past ``NOTIFIER_RETRY_MAX_AGE``."""
    UNEXPECTED = "unexpected"
    """Sending raised an error nobody classified: a bug, in the log as ``dispatch.send_crashed``."""
    ERASED = "erased"
    """The customer's data key is destroyed (a database restored from a backup taken before
    an erasure): the message ends ``cancelled`` with this reason, never sent or retried."""


class AttemptOutcome(enum.StrEnum):
    """What one delivery attempt came to, as the attempt log records it."""

    SENT = "sent"
    TRANSIENT = "transient"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    """The customer was erased: their data no longer opens (``FailureReason.ERASED``)."""
    LEASE_EXPIRED = "lease_expired"
    """Another worker took the message over mid-send: it may have been delivered."""
    BOUNCED = "bounced"
    """A report after delivery: the mail never arrived (5.x.x)."""
    DELAYED = "delayed"
    """A transient report after delivery (4.x.x); the status stays."""
    COMPLAINED = "complained"
    """The recipient reported the mail as spam; the status stays ``sent``."""


class SuppressionReason(enum.StrEnum):
    """Why an address gets no mail (or, for the weaker ones, no optional mail)."""

    MANUAL = "manual"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard_bounce"

    @property
    def severity(self) -> int:
        """A stronger reason replaces a weaker one: a hard bounce outranks a complaint."""
        return list(SuppressionReason).index(self)


class CampaignStatus(enum.StrEnum):
    """A newsletter campaign's place in its life."""

    DRAFT = "draft"
    """Created to be tried (``POST …/test``); nothing is sent until it is scheduled."""
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    """Stopped by hand: no fan-out, unsent messages parked until it is resumed."""
    DONE = "done"
    CANCELLED = "cancelled"


class TemplateFault(enum.StrEnum):
    """Why a template or catalog could not make a mail: what ``TemplateError.reason`` holds.

    ``templates check`` and the failure record classify by it, never by the message's words.
    """

    UNKNOWN_KIND = "unknown_kind"
    NOT_FOUND = "not_found"
    """A template includes or extends a file that does not exist."""
    SYNTAX = "syntax"
    UNDEFINED = "undefined"
    """The template used a value its context lacks (``TemplateError.missing`` names it)."""
    RUNTIME = "runtime"
    """Anything else a template raised while rendering (a filter's ``ValueError``…)."""
    NO_SUBJECT_BLOCK = "no_subject_block"
    EMPTY_SUBJECT = "empty_subject"
    MJML = "mjml"
    """mrml refused the MJML the template produced (``mjml_line`` is where, when it says)."""
    CATALOG = "catalog"
    """A ``.po``/``.pot`` catalog cannot be read or parsed."""
    CONTEXT = "context"
    """The message's context could not be assembled for rendering."""
