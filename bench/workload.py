"""The mail the benchmarks send: a mixed, reproducible set of due messages, queued in bulk.

Message ``i`` is fully determined by ``i``: its kind cycles through the five
transactional kinds, its customer (and so its locale, nl or en) through
``CUSTOMERS`` customers, its order has 1 to ``MAX_LINES`` lines. That lets
the aiosmtplib baseline send byte-for-byte the same kind of mail without
rendering every message: letters depend only on the *variant* (kind,
locale, number of lines), so one letter per variant is built and reused.
Messages are queued the way ``tests/delivery/test_workers.py`` does it, straight
through ``store.outbox.add``, because the API's per-request cost is the
enqueue benchmark's business, not the delivery benchmark's.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import API_TOKEN, ENCRYPTION_KEY, SECRET_KEY
from notifier.flows import kinds
from notifier.service import Notifier
from notifier.settings import Settings
from notifier.store import customers, outbox

KIND_MIX = (
    "order_confirmation",
    "shipping_notice",
    "review_products",
    "review_service",
    "verification_question",
)
LOCALES = ("nl", "en")
CUSTOMERS = 1000
MAX_LINES = 6
QUEUE_CHUNK = 5000
"""Messages per queueing transaction: one huge ORM flush would measure SQLAlchemy's memory."""

PRODUCTS = (
    ("BRK-221", "Remblokkenset vooras Bosch BP1234", "34.95"),
    ("WIP-600", "Ruitenwisserset Bosch Aerotwin 600/450 mm", "24.99"),
    ("BAT-074", "Accu Varta Blue Dynamic E11 74 Ah", "109.00"),
    ("DSC-280", "Remschijf voor Brembo 09.A727.11 (280 mm)", "80.00"),
    ("OLF-113", "Oliefilter Mann W 712/95", "11.49"),
    ("LMP-H7", "Koplamp H7 Philips X-tremeVision Pro150", "27.50"),
)
QUESTION = (
    "Je hebt de remschijf DSC-280 besteld voor een Volkswagen Golf VII uit 2015, maar volgens "
    "onze gegevens past deze schijf alleen op een Golf VI.\nKlopt het bouwjaar van je auto? "
    "Stuur ons gerust je kenteken, dan zoeken we de juiste remschijf voor je op."
)


@dataclass(frozen=True)
class Planned:
    """One message of the workload, before it is queued."""

    index: int
    kind: str
    customer_id: str
    locale: str
    lines: int
    context: dict[str, Any]

    @property
    def variant(self) -> tuple[str, str, int]:
        return (self.kind, self.locale, self.lines)


def customer_id(number: int) -> str:
    return f"C{number:05d}"


def customer_email(number: int) -> str:
    return f"klant{number}@example.nl"


def customer_name(number: int) -> str:
    return f"Klant {number} de Vries"


def customer_locale(number: int) -> str:
    return LOCALES[number % len(LOCALES)]


def order(index: int, lines: int) -> dict[str, Any]:
    chosen = [PRODUCTS[(index + k) % len(PRODUCTS)] for k in range(lines)]
    quantities = [1 + (index + k) % 3 for k in range(lines)]
    total = sum(
        float(price) * qty for (_sku, _name, price), qty in zip(chosen, quantities, strict=True)
    )
    return {
        "id": f"O-{index}",
        "number": f"WP-{100000 + index}",
        "currency": "EUR",
        "total": f"{total:.2f}",
        "lines": [
            {"sku": sku, "name": name, "quantity": qty, "unit_price": price}
            for (sku, name, price), qty in zip(chosen, quantities, strict=True)
        ],
        "shipping_address": {
            "name": "Jan de Vries",
            "street": "Dorpsstraat 1",
            "postcode": "3511 AB",
            "city": "Utrecht",
            "country": "NL",
        },
    }


def context_for(kind: str, index: int, lines: int) -> dict[str, Any]:
    """The stored context an event of this kind would have produced."""
    data: dict[str, Any] = {}
    if kind == "shipping_notice":
        data = {"carrier": "PostNL", "tracking_url": f"https://postnl.example/track/3S{index:09d}"}
    elif kind == "verification_question":
        data = {"question": QUESTION}
    return {"order": order(index, lines), "data": data}


def plan(index: int) -> Planned:
    kind = KIND_MIX[index % len(KIND_MIX)]
    number = index % CUSTOMERS
    lines = 1 + (index // len(KIND_MIX)) % MAX_LINES
    return Planned(
        index,
        kind,
        customer_id(number),
        customer_locale(number),
        lines,
        context_for(kind, index, lines),
    )


def plans(count: int) -> Iterator[Planned]:
    return (plan(index) for index in range(count))


def settings(database_url: str, smtp_port: int, **overrides: Any) -> Settings:
    """Engine settings for in-process runs: the sink over plain SMTP, 8 connections, batch 500."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_tls": "none",
        "smtp_connections": 8,
        "batch_size": 500,
        "secret_key": SECRET_KEY,
        "encryption_key": ENCRYPTION_KEY,
        "api_tokens": [API_TOKEN],
        "base_url": "https://notifier.bench",
    }
    return Settings(**values | overrides)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'notifier.db'}"


def add_customers(engine: Notifier, now: datetime) -> None:
    with engine.database.transaction() as session:
        for number in range(CUSTOMERS):
            customers.upsert(
                session,
                engine.sealer,
                customer_id=customer_id(number),
                email=customer_email(number),
                name=customer_name(number),
                locale=customer_locale(number),
                now=now,
            )


def queue_due(engine: Notifier, count: int, *, prefix: str = "bench") -> None:
    """Queue ``count`` due messages of the mix (and their customers), not timed."""
    now = datetime.now(UTC)
    add_customers(engine, now)
    batch: list[outbox.NewMessage] = []
    for planned in plans(count):
        batch.append(
            outbox.NewMessage(
                id=f"{prefix}-{planned.index}",
                customer_id=planned.customer_id,
                kind=planned.kind,
                category=kinds.get(planned.kind).category,
                priority=kinds.get(planned.kind).priority,
                send_after=now,
                context=planned.context,
                created_at=now,
                order_id=planned.context["order"]["id"],
            )
        )
        if len(batch) == QUEUE_CHUNK:
            _add(engine, batch)
            batch = []
    if batch:
        _add(engine, batch)


WARM_UP = 500
"""Messages delivered, untimed, before a timed delivery: the render processes boot and compile
their templates, as the aiosmtplib baseline opens its connections before its clock starts."""


async def warm_up(engine: Notifier) -> None:
    """Deliver ``WARM_UP`` messages through a started engine (their ids start ``warm-up-``)."""
    await asyncio.to_thread(queue_due, engine, WARM_UP, prefix="warm-up")
    while await engine.dispatch_due():
        pass


def _add(engine: Notifier, batch: list[outbox.NewMessage]) -> None:
    with engine.database.transaction() as session:
        outbox.add(session, engine.sealer, batch)


def count_in(database: Path, *statuses: str) -> int:
    """Messages in ``statuses`` in another process's SQLite file, read-only so as not to
    disturb it."""
    marks = ", ".join("?" for _ in statuses)
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        query = f"SELECT count(*) FROM messages WHERE status IN ({marks})"
        row = connection.execute(query, statuses).fetchone()
    return int(row[0])


def count_sent(engine: Notifier) -> dict[str, int]:
    """Messages by status, summed over categories."""
    totals: dict[str, int] = {}
    for row in engine.status().depth:
        totals[row.status] = totals.get(row.status, 0) + row.count
    return totals
