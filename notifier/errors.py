"""One exception tree for notifier, each error a noun carrying its data.

Adapters map these to their own vocabulary (HTTP status codes, CLI exit
codes) in one place; library errors are wrapped with ``raise ... from exc``.
"""

from __future__ import annotations

from notifier.vocabulary import TemplateFault

_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


class NotifierError(Exception):
    """Base of every error notifier raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(NotifierError):
    """A caller sent something notifier cannot accept; ``field`` names it."""

    code = "invalid_input"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Unstorable(InvalidInput):
    """The database refused a value that the input checks let through.

    Text or a number it cannot hold, or a constraint the value breaks; it
    fails the one request that sent it (see ``notifier.store.group_commit``).
    """


class StorageError(NotifierError):
    """The database refused a statement for a reason that is not the input's: a bug to fix.

    Answered as a 500 with the usual error body; the request fails alone.
    """

    code = "storage_error"


class NotFound(NotifierError):
    """The thing asked for does not exist (or no longer does)."""

    code = "not_found"


class Unauthorized(NotifierError):
    """A caller that must prove who it is did not (a provider webhook's signature or password)."""

    code = "unauthorized"


class Conflict(NotifierError):
    """The request is valid but the current state forbids it (e.g. cancelling sent mail)."""

    code = "conflict"


class Duplicate(Conflict):
    """A record with the same key already exists (an idempotency key seen before)."""

    code = "duplicate"


class BadToken(NotifierError):
    """A signed link token is forged, altered, truncated or expired."""

    code = "bad_token"


class Shredded(NotifierError):
    """Sealed data whose customer's data key was destroyed: the customer was erased.

    Reads of such data treat the customer as erased (a database restored
    from a backup taken before the erasure brings nobody back).
    """

    code = "erased"


class ConfigurationError(NotifierError):
    """A setting is missing or malformed; ``variable`` names the environment variable."""

    code = "configuration"

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class TemplateError(NotifierError):
    """A template or catalog cannot be rendered; ``file`` and ``line`` say where.

    What went wrong is data, so that no reader parses the message: ``reason``
    is its class; ``missing`` the dotted path (``order.shipping_address``) of
    the value a template used and its context lacked; for an MJML error,
    ``mjml_line`` is the line of the generated MJML mrml names and ``detail``
    mrml's own words. ``file`` is a ``.po`` file for a catalog error.
    """

    code = "template"

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        *,
        reason: TemplateFault = TemplateFault.RUNTIME,
        missing: str | None = None,
        mjml_line: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.reason = reason
        self.missing = missing
        self.mjml_line = mjml_line
        self.detail = detail

    def __str__(self) -> str:
        where = self.file or "<template>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"


class DeliveryError(NotifierError):
    """The mail server did not take a message; ``smtp_code`` keeps its reply code."""

    code = "delivery"
    permanent = False

    def __init__(self, message: str, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.smtp_code = smtp_code

    def __str__(self) -> str:
        return f"{self.smtp_code} {self.message}" if self.smtp_code else self.message


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: 4xx replies, dropped connections, timeouts."""


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help: 5xx replies."""

    permanent = True


class ServiceUnavailable(NotifierError):
    """A dependency (the database) cannot be reached right now; try again shortly."""

    code = "unavailable"


def plain_message(message: str) -> str:
    """pydantic's message without the prefix it puts before a validator's own words."""
    for prefix in _PYDANTIC_PREFIXES:
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message
