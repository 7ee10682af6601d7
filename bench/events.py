"""Shop events as the backend posts them, for the enqueue and latency benchmarks."""

from __future__ import annotations

import uuid
from typing import Any

from bench import workload


def order_placed(
    index: int, *, email: str | None = None, customer_id: str | None = None
) -> dict[str, Any]:
    """An ``order.placed`` event for customer ``index % CUSTOMERS`` with 1 to 6 order lines."""
    number = index % workload.CUSTOMERS
    lines = 1 + index % workload.MAX_LINES
    return {
        "id": f"evt-{uuid.uuid4().hex}",
        "type": "order.placed",
        "customer": {
            "id": customer_id or workload.customer_id(number),
            "email": email or workload.customer_email(number),
            "name": workload.customer_name(number),
            "locale": workload.customer_locale(number),
        },
        "order": workload.order(index, lines),
        "data": {},
    }


def order_delivered(index: int) -> dict[str, Any]:
    """An ``order.delivered`` event: it queues the review pair days ahead, so nothing is due.

    Posting these measures the API and the enqueue with no delivery
    competing for the process, to set beside ``order.placed``.
    """
    return order_placed(index) | {"type": "order.delivered"}
