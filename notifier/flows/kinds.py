"""The message kinds and their categories (CONTRACT §2) as data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from notifier import errors
from notifier.vocabulary import Category

UNSUBSCRIBABLE = (Category.ORDER_UPDATES, Category.REVIEWS, Category.NEWSLETTER)
"""Categories a customer may turn off; ``service`` mail is essential."""

WINDOWED = (Category.REVIEWS, Category.NEWSLETTER)
"""Categories that wait for the send window; the rest go out day and night."""

PRIORITIES = {
    Category.ORDER_UPDATES: 0,
    Category.SERVICE: 0,
    Category.REVIEWS: 1,
    Category.NEWSLETTER: 2,
}


@dataclass(frozen=True)
class Kind:
    """One kind of mail: its category and the data its template is written against.

    ``requires`` and ``optional`` are dotted paths into the template context
    (``order.number``, ``data.tracking_url``). Intake refuses an event that
    would queue this kind without a required path (422 naming it), and
    ``templates check`` renders each template against the smallest context
    these allow, so a template that reads an optional path unguarded fails
    there rather than in a customer's mail.
    """

    name: str
    category: Category
    requires: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    asks_reply: bool = False
    """The customer answers by replying: the mail carries ``Reply-To`` (``NOTIFIER_REPLY_TO``,
    else ``NOTIFIER_FROM``). Other kinds carry one only if set for them
    (``NOTIFIER_REPLY_TO_KINDS``)."""

    @property
    def unsubscribable(self) -> bool:
        return self.category in UNSUBSCRIBABLE

    @property
    def windowed(self) -> bool:
        return self.category in WINDOWED

    @property
    def priority(self) -> int:
        """Claim order among due mail: order and service mail first, newsletters last.

        A confirmation must not wait behind a million-recipient campaign.
        """
        return PRIORITIES.get(self.category, 0)

    @property
    def urgent(self) -> bool:
        """Someone is looking out for this mail now; due at once, it may skip the queue."""
        return self.priority == 0


ORDER_DETAILS = (
    "order.lines",
    "order.shipping_address",
    "order.shipping_address.name",
    "order.shipping_address.street",
    "order.shipping_address.postcode",
    "order.shipping_address.city",
    "order.shipping_address.country",
)
"""What an order may tell beyond its number: a pick-up or digital order has no address."""

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "order_confirmation",
            Category.ORDER_UPDATES,
            requires=("order.number", "order.total"),
            optional=ORDER_DETAILS,
        ),
        Kind(
            "shipping_notice",
            Category.ORDER_UPDATES,
            requires=("order.number",),
            optional=(*ORDER_DETAILS, "order.total", "data.carrier", "data.tracking_url"),
        ),
        Kind(
            "verification_question",
            Category.SERVICE,
            requires=("order.number", "data.question"),
            optional=(*ORDER_DETAILS, "order.total"),
            asks_reply=True,
        ),
        Kind(
            "review_products",
            Category.REVIEWS,
            requires=("order.number",),
            optional=("order.lines",),
        ),
        Kind("review_service", Category.REVIEWS, requires=("order.number",)),
        Kind("newsletter", Category.NEWSLETTER, requires=("newsletter.title",)),
        Kind("newsletter_confirm", Category.SERVICE),
    )
}


def get(name: str, field: str = "kind") -> Kind:
    """The kind called ``name``; an unknown name is the caller's mistake."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise errors.InvalidInput(
            f"unknown kind {name!r}; expected one of {known}", field
        ) from None


def missing(kind: Kind, context: Mapping[str, Any]) -> list[str]:
    """The paths of ``kind.requires`` that ``context`` lacks, in the kind's order.

    A path is missing when a step of it is absent or not an object, or when
    its value is None, blank text (whitespace only) or an empty list or
    object: a template shows none of these as the number, total or question
    it needs.
    """
    return [path for path in kind.requires if not _present(_lookup(context, path))]


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def check(names: Iterable[str], context: Mapping[str, Any], prefix: str = "") -> None:
    """Refuse ``context`` if a kind of ``names`` would be sent without what it requires.

    The InvalidInput names the first missing path (after ``prefix``, the
    caller's name for where the context came from, e.g. ``context.``) and,
    in its message, every missing one with the kind that needs it.
    """
    lacking: dict[str, str] = {}
    for name in names:
        for path in missing(get(name), context):
            lacking.setdefault(path, name)
    if lacking:
        listed = ", ".join(f"{prefix}{path} (for {name})" for path, name in lacking.items())
        first = next(iter(lacking))
        raise errors.InvalidInput(f"required and not given: {listed}", f"{prefix}{first}")
