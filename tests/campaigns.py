"""A newsletter's sample content and subscribers inserted in bulk, for campaign tests."""

from __future__ import annotations

import json

from sqlalchemy import insert

from notifier.service import Notifier
from notifier.store.models import Customer, Preference
from tests import ROOT

SAMPLE = json.loads((ROOT / "templates/samples/newsletter.json").read_text())


CONTENT = SAMPLE["newsletter"]


def add_subscribers(
    engine: Notifier, count: int, *, confirmed_every: int = 1, start: int = 0
) -> None:
    """Insert ``count`` customers in bulk; every ``confirmed_every``-th one has confirmed."""
    now = engine.clock.now()
    sealer = engine.sealer
    customers = []
    choices = []
    for number in range(start, start + count):
        email = f"lezer{number}@example.nl"
        customers.append(
            {
                "id": f"N{number:07d}",
                "email": sealer.seal_text(email),
                "email_index": sealer.blind_index(email),
                "name": sealer.seal_text(f"Lezer {number}"),
                "locale": ("nl", "en", "nl_BE")[number % 3],
                "created_at": now,
                "updated_at": now,
            }
        )
        if number % confirmed_every == 0:
            choices.append(
                {
                    "customer_id": f"N{number:07d}",
                    "category": "newsletter",
                    "enabled": True,
                    "source": "confirm_link",
                    "updated_at": now,
                }
            )
    with engine.database.transaction() as session:
        session.execute(insert(Customer), customers)
        if choices:
            session.execute(insert(Preference), choices)
