"""Whether a message may go out, decided when it is sent. Pure rules over looked-up facts."""

from __future__ import annotations

from notifier.flows import kinds
from notifier.vocabulary import Category, SuppressionReason

DEFAULTS = {Category.ORDER_UPDATES: True, Category.REVIEWS: True, Category.NEWSLETTER: False}
"""A category's state while the customer has made no choice: the newsletter is opt-in only."""


def is_enabled(category: str, choice: bool | None) -> bool:
    """A category's effective state; essential categories are always on."""
    if category not in kinds.UNSUBSCRIBABLE:
        return True
    return DEFAULTS[Category(category)] if choice is None else choice


def blocked(category: str, choice: bool | None, suppression: str | None) -> str | None:
    """Why a message of ``category`` must not be sent, or None when it may.

    An address that hard-bounced gets nothing at all; any other suppression
    still lets essential (service) mail through; an unsubscribed category
    gets nothing.
    """
    if suppression == SuppressionReason.HARD_BOUNCE:
        return "address suppressed: hard bounce"
    if category not in kinds.UNSUBSCRIBABLE:
        return None
    if suppression is not None:
        return f"address suppressed: {suppression}"
    if not is_enabled(category, choice):
        return f"unsubscribed from {category}"
    return None
