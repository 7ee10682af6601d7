"""The shapes the shop backend sends and receives, validated by pydantic.

Shared by the HTTP API and the Python API so both accept exactly the same
input. Field constraints here are the first line of defence against bad
input; the error handler turns their failures into 422s naming the field.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from notifier import errors, phones, storable
from notifier.vocabulary import Category, MessageStatus, SuppressionReason

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ShortText = Annotated[str, StringConstraints(max_length=300)]
Locale = Annotated[str, StringConstraints(strip_whitespace=True, max_length=35)]
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2, ge=0)]


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""The times an event or a schedule may name: a shop's dates, far from ``datetime``'s ends.

Delays and the send window are added to them, so a year 9999 (or a year 1
at +14:00) would overflow there; such a time is a mistake, refused as one.
"""


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("needs a time zone offset, e.g. 2026-11-21T10:00:00+01:00")
    if not EARLIEST <= value < LATEST:
        raise ValueError("must lie between 2000-01-01 and 2100-01-01")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


def _web_url(value: str) -> str:
    """An http or https URL: a link in a mail must not run script or carry a document."""
    try:
        scheme = urlsplit(value).scheme
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket: "http://[::1"
        raise ValueError(f"not a URL: {exc}") from exc
    if scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    return value


WebUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_web_url)]

LINK_SCHEMES = ("http", "https", "mailto")
_LINK_KEYS = re.compile(r"(^|_)(url|href|link|src)$", re.IGNORECASE)
_SCRIPTED = re.compile(r"^[\x00-\x20]*(javascript|vbscript|data|file)[\x00-\x20]*:", re.IGNORECASE)


def unsafe_links(value: Any, path: str = "") -> list[str]:
    """Where ``value`` holds a link a mail must not carry, as dotted paths (``items.2.url``).

    A value under a link-like key (``url``, ``*_url``, ``href``, ``link``,
    ``src``) must be an http, https or mailto URL; any text at all that
    starts with a script or document scheme (``javascript:``, ``data:``)
    is refused wherever it stands, since a template may put it in an href.
    One guard for campaign content, ad-hoc message contexts and event data.
    """
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(item, str) and _LINK_KEYS.search(str(key)) and not linkable(item):
                found.append(where)
            else:
                found += unsafe_links(item, where)
        return found
    if isinstance(value, list):
        return [hit for i, item in enumerate(value) for hit in unsafe_links(item, f"{path}.{i}")]
    if isinstance(value, str) and _SCRIPTED.match(value):
        return [path]
    return []


def linkable(value: str) -> bool:
    """Whether ``value`` may stand in an href: empty, or an http, https or mailto URL."""
    if not value:
        return True  # no link at all: the template decides whether to draw one
    try:
        return urlsplit(value.strip()).scheme.lower() in LINK_SCHEMES
    except ValueError:
        return False


def _safe_links(value: dict[str, Any]) -> dict[str, Any]:
    found = unsafe_links(value)
    if found:
        raise ValueError(f"{', '.join(found[:5])}: a link must be an {'/'.join(LINK_SCHEMES)} URL")
    return value


SafeData = Annotated[dict[str, Any], AfterValidator(_safe_links)]
"""Free JSON that may reach a template: no link in it may run script (``javascript:``)."""

Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,39}$")]
"""A shop's label on a customer (``vip``, ``b2b``): lower case, short, no ``|``."""
Tags = Annotated[list[Tag], Field(max_length=25)]


def _deliverable_address(value: str) -> str:
    """The address as SMTP will carry it: ASCII local part, IDN domain in punycode.

    Mail servers without SMTPUTF8 cannot take a non-ASCII local part, so it
    is refused here (422) rather than failing, or worse blocking, at send time.
    """
    try:
        checked = email_validator.validate_email(
            value, check_deliverability=False, allow_smtputf8=False
        )
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not a deliverable email address: {exc}") from exc
    return checked.ascii_email or checked.normalized


Email = Annotated[
    str,
    StringConstraints(max_length=320),
    AfterValidator(_deliverable_address),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 320}),
]


class Strict(storable.Checked):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)


class Lenient(storable.Checked):
    """Objects the shop may enrich with fields we do not know; extras are kept."""

    model_config = ConfigDict(extra="allow", str_max_length=10_000)


class PhoneFree(BaseModel):
    """A request whose phone-named fields, at any depth, are dropped before validation.

    See ``notifier.phones``: what was dropped is named (by path, never by
    value) in ``dropped_phones`` for the engine to count and log; nothing
    of it is stored. A ``phone`` on the customer is dropped, not refused.
    """

    _dropped_phones: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _drop_phones(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        found: list[str] = []
        if isinstance(data, dict):
            data, found = phones.without_phones(data)
        model = handler(data)
        if found:
            model._dropped_phones = tuple(found)
        return model

    @property
    def dropped_phones(self) -> tuple[str, ...]:
        """The paths of the phone fields taken out (``order.shipping_address.phone``)."""
        return self._dropped_phones


class EventType(enum.StrEnum):
    ORDER_PLACED = "order.placed"
    ORDER_SHIPPED = "order.shipped"
    ORDER_VERIFICATION_REQUESTED = "order.verification_requested"
    ORDER_DELIVERED = "order.delivered"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_RETURNED = "order.returned"
    CUSTOMER_UPDATED = "customer.updated"
    NEWSLETTER_SUBSCRIBED = "newsletter.subscribed"


class CustomerIn(Strict):
    id: Id
    email: Email
    name: ShortText | None = None
    first_name: ShortText | None = None
    """What the greeting calls the customer ("Hi Jan,"); without it the mail says "Hello,"."""
    locale: Locale | None = None
    tags: Tags | None = None
    """Replaces the customer's tags when given; left out, the stored tags stay."""


class OrderLine(Lenient):
    sku: ShortText
    name: ShortText
    quantity: int = Field(ge=1, le=100_000)
    unit_price: Money


class Address(Lenient):
    name: ShortText | None = None
    street: ShortText | None = None
    postcode: ShortText | None = None
    city: ShortText | None = None
    country: ShortText | None = None


class OrderIn(Lenient):
    id: Id
    number: ShortText | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    total: Money | None = None
    lines: list[OrderLine] = Field(default_factory=list, max_length=1000)
    shipping_address: Address | None = None


class ShippedData(Lenient):
    """``data`` of ``order.shipped``: both optional (a pick-up order has no carrier)."""

    carrier: Annotated[str, StringConstraints(max_length=2000)] | None = None
    tracking_url: WebUrl | None = None


class VerificationData(Lenient):
    """``data`` of ``order.verification_requested``: the question, shown escaped.

    Whether it is present is the kinds table's say (``verification_question``
    requires ``data.question``), so presence is checked in one place.
    """

    question: Annotated[str, StringConstraints(max_length=5000)] | None = None


EVENT_DATA: dict[EventType, type[Lenient]] = {
    EventType.ORDER_SHIPPED: ShippedData,
    EventType.ORDER_VERIFICATION_REQUESTED: VerificationData,
}
"""The shape of ``data`` for the event types that read it; the others' ``data`` is free."""


class EventIn(Strict, PhoneFree):
    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    type: EventType
    occurred_at: AwareDatetime | None = None
    customer: CustomerIn
    order: OrderIn | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    """Its links are guarded in ``flows.events.validate``, after the type's own shape."""


class MessageIn(Strict, PhoneFree):
    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    kind: Annotated[str, StringConstraints(max_length=40)]
    to: CustomerIn
    context: SafeData = Field(default_factory=dict)
    send_at: AwareDatetime | None = None


Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AudienceIn(Strict):
    """Which confirmed subscribers a campaign goes to; left empty, all of them.

    ``locales`` match by language too (``nl`` takes ``nl_BE``); a subscriber
    needs one of ``tags_any`` (when given) and none of ``tags_none``.
    """

    locales: Annotated[list[Locale], Field(min_length=1, max_length=50)] | None = None
    tags_any: Tags = Field(default_factory=list)
    tags_none: Tags = Field(default_factory=list)


class CampaignIn(Strict):
    id: Id
    kind: Literal["newsletter"] = "newsletter"
    subjects: dict[Locale, Subject] = Field(min_length=1, max_length=50)
    content: SafeData
    """One object for everybody, or objects keyed by locale (``{"nl": {...}, "en": {...}}``)."""
    fallback_locale: Locale | None = None
    """The content that stands in for an audience locale no content reaches."""
    audience: AudienceIn = Field(default_factory=AudienceIn)
    status: Literal["scheduled", "draft"] = "scheduled"
    send_at: AwareDatetime | None = None
    cron: Annotated[str, StringConstraints(max_length=100)] | None = None


class CampaignProgress(BaseModel):
    targeted: int = 0
    scheduled: int = 0
    sending: int = 0
    retrying: int = 0
    sent: int = 0
    suppressed: int = 0
    failed: int = 0
    cancelled: int = 0
    bounced: int = 0


class CampaignOut(BaseModel):
    id: str
    kind: str
    status: str
    subjects: dict[str, str]
    audience: dict[str, Any] = Field(default_factory=dict)
    audience_size: int = 0
    """Confirmed, unsuppressed subscribers the audience selects now."""
    send_at: datetime | None
    cron: str | None
    next_run_at: datetime | None
    progress: CampaignProgress
    progress_by_locale: dict[str, CampaignProgress] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class CampaignTestIn(Strict):
    to: Annotated[list[Email], Field(min_length=1, max_length=10)]
    locale: Locale | None = None


class PreferencesIn(Strict):
    """Choices from the account page; ``ip`` and ``consent_text_version`` prove consent."""

    order_updates: bool | None = None
    reviews: bool | None = None
    newsletter: bool | None = None
    service: bool | None = None
    ip: Annotated[str, StringConstraints(max_length=45)] | None = None
    consent_text_version: Annotated[str, StringConstraints(max_length=50)] | None = None

    def changes(self) -> dict[str, bool]:
        return {
            category: value
            for category in Category
            if (value := getattr(self, category.value)) is not None
        }


class SuppressionIn(Strict):
    email: Email
    reason: SuppressionReason
    detail: Annotated[str, StringConstraints(max_length=500)] | None = None


class SuppressionOut(BaseModel):
    """One address's suppression, looked up by its keyed hash; the address is not stored."""

    reason: str
    detail: str | None
    since: datetime


class SuppressionLifted(BaseModel):
    status: Literal["lifted"] = "lifted"
    previous_reason: str
    reason: str


class MessageOut(BaseModel):
    id: str
    kind: str
    category: str
    status: MessageStatus
    send_after: datetime
    attempts: int = 0
    last_error: str | None = None
    reason: str | None = None
    sent_at: datetime | None = None
    created_at: datetime | None = None
    order_id: str | None = None


class EventOut(BaseModel):
    event_id: str
    messages: list[MessageOut]


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as exc:
        raise ValueError("not an IPv4 or IPv6 address") from exc


class ConsentProof(Strict):
    """Newsletter consent given elsewhere (the shop's previous tool): when, how, where, to what."""

    at: AwareDatetime
    source: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=30)]
    """How it was given there, as that tool names it (``signup_form``, ``checkout``)."""
    ip: Annotated[str, StringConstraints(max_length=45), AfterValidator(_ip_address)] | None = None
    text_version: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None = (
        None
    )
    """The consent text the customer agreed to; left out, recorded as ``unknown``."""


class SubscriberIn(Strict, PhoneFree):
    """One row of a subscriber import: a customer, and their consent proof if there is one.

    A phone-named field, at any depth, is dropped as from every other request."""

    customer: CustomerIn
    consent: ConsentProof | None = None
    confirm: Literal["send", "none"] | None = None
    """Without proof: ``send`` queues the double opt-in mail; unset, the import's choice."""


class ImportProblem(BaseModel):
    """A row the import refused: where it stands (line or row number) and the field."""

    line: int
    field: str | None
    message: str


class ImportOut(BaseModel):
    """What an import did; the good rows are in even when some rows were refused."""

    rows: int
    imported: int
    confirmed: int
    """Imported rows whose customer is a confirmed subscriber now (proof given, or earlier)."""
    unconfirmed: int
    confirm_mails: int
    """Double opt-in mails queued by this import (none for a customer who had one already)."""
    kept_unsubscribed: int
    """Rows with proof for customers who turned the newsletter off here: their choice stands."""
    errors: list[ImportProblem]


_Model = TypeVar("_Model", bound=BaseModel)


def parsed(model: type[_Model], data: _Model | Mapping[str, Any]) -> _Model:
    """``data`` as ``model``; invalid data raises ``InvalidInput`` naming the first bad field.

    For callers of the Python API, which should meet the same error as the
    HTTP API's 422 rather than pydantic's own.
    """
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or None
        raise errors.InvalidInput(errors.plain_message(problem["msg"]), field) from None
