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
    name: str
    category: str

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


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("order_confirmation", ORDER_UPDATES),
        Kind("shipping_notice", ORDER_UPDATES),
        Kind("verification_question", SERVICE),
        Kind("review_products", REVIEWS),
        Kind("review_service", REVIEWS),
        Kind("newsletter", NEWSLETTER),
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
