"""The message kinds and their categories (CONTRACT §2) as data."""

from __future__ import annotations

from dataclasses import dataclass

from notifier import errors

ORDER_UPDATES = "order_updates"
REVIEWS = "reviews"
NEWSLETTER = "newsletter"
SERVICE = "service"

UNSUBSCRIBABLE = (ORDER_UPDATES, REVIEWS, NEWSLETTER)
"""Categories a customer may turn off; ``service`` mail is essential."""

WINDOWED = (REVIEWS, NEWSLETTER)
"""Categories that wait for the send window; the rest go out day and night."""

PRIORITIES = {ORDER_UPDATES: 0, SERVICE: 0, REVIEWS: 1, NEWSLETTER: 2}


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
    category: str
    requires: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

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
            ORDER_UPDATES,
            requires=("order.number", "order.total"),
            optional=ORDER_DETAILS,
        ),
        Kind(
            "shipping_notice",
            ORDER_UPDATES,
            requires=("order.number",),
            optional=(*ORDER_DETAILS, "order.total", "data.carrier", "data.tracking_url"),
        ),
        Kind(
            "verification_question",
            SERVICE,
            requires=("order.number", "data.question"),
            optional=(*ORDER_DETAILS, "order.total"),
        ),
        Kind("review_products", REVIEWS, requires=("order.number",), optional=("order.lines",)),
        Kind("review_service", REVIEWS, requires=("order.number",)),
        Kind("newsletter", NEWSLETTER, requires=("newsletter.title",)),
        Kind("newsletter_confirm", SERVICE),
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
