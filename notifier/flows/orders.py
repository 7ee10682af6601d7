"""An order as the engine remembers it: the latest news of each field, merged.

Pure: the store keeps one snapshot per customer and order (sealed), intake
reads it, merges the event's order over it with ``merge`` and writes it
back, and the mail is written from the merged order.
"""

from __future__ import annotations

from typing import Any

from notifier.schemas import OrderIn


def merge(stored: dict[str, Any] | None, given: OrderIn) -> dict[str, Any]:
    """``stored`` with every field ``given`` names replaced by the given value.

    Fields are replaced whole: new ``lines`` replace the old lines, and a new
    ``shipping_address`` replaces the old one (a new street with the old
    postcode would be an address nobody lives at). A field left out, or sent
    as null, keeps what was known. A new order starts from the schema's
    defaults (``currency`` EUR, no lines), so a later event that names only
    ``id`` changes nothing.
    """
    base = stored if stored is not None else _defaults(given.id)
    news = given.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    return {**base, **news}


def _defaults(order_id: str) -> dict[str, Any]:
    return OrderIn(id=order_id).model_dump(mode="json", exclude_none=True)
