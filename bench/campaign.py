"""A newsletter campaign end to end: subscribers → fan-out → delivered, against the bare client.

The subscribers are bulk-inserted first (``bench.fanout``'s ``prepare``
child, not timed). A second child builds the engine on that database,
creates the campaign, calls ``advance()`` and dispatches until no mail is
due, into the sink: its elapsed time covers fan-out and delivery, and its
peak RSS (``VmHWM``) is the whole campaign's. A third child is the
baseline: the same campaign's letters (one per locale, assembled by the
engine) pushed by bare aiosmtplib over the same number of connections
(``bench.delivery``'s client), the same count, into the same sink.

Run a child directly: ``python -m bench.campaign send|bare DB N SMTP_PORT``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import delivery, fanout, workload
from bench.common import fresh_dir, stopwatch
from bench.sinks import Sink

CAMPAIGN_ID = "bench-campaign"
ELAPSED_TARGET = 15 * 60.0
"""Issue 23: 1M subscribers delivered end to end within this many seconds."""
RSS_TARGET_MB = 300.0
RATIO_TARGET = 0.9
"""Issue 23: the campaign's rate at least this share of the bare client's."""


@dataclass(frozen=True)
class CampaignRun:
    subscribers: int
    sent: int
    seconds: float
    fan_out_seconds: float
    peak_mb: float
    bare_rate: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def run(sink: Sink, subscribers: int) -> CampaignRun:
    folder = fresh_dir("campaign")
    database = folder / "notifier.db"
    fanout.child("prepare", database, subscribers)
    port = str(sink.port)
    sent = fanout.child("send", database, subscribers, port, module="bench.campaign")
    bare = fanout.child("bare", database, subscribers, port, module="bench.campaign")
    return CampaignRun(
        subscribers,
        sent["sent"],
        sent["seconds"],
        sent["fan_out_seconds"],
        sent["hwm_kb"] / 1024,
        bare["rate"],
    )


def _campaign(engine: Any) -> None:
    engine.newsletters.create(
        {"id": CAMPAIGN_ID, "subjects": fanout.SUBJECTS, "content": fanout.CONTENT}
    )


def _send(database: Path, port: int) -> dict[str, Any]:
    """Fan out and deliver the whole campaign in this process; its time and peak memory."""
    from notifier.runtime import eventloop

    # Rendering in a thread of this process: the pool's children would not count in its RSS.
    engine = fanout.engine_for(database, port, render_processes=0)
    try:
        _campaign(engine)
        seconds, fan_out = eventloop.run(_fan_out_and_deliver(engine))
        sent = workload.count_sent(engine).get("sent", 0)
    finally:
        engine.close()
    return {"sent": sent, "seconds": seconds, "fan_out_seconds": fan_out, "hwm_kb": fanout.hwm_kb()}


async def _fan_out_and_deliver(engine: Any) -> tuple[float, float]:
    import asyncio

    with stopwatch() as elapsed:
        # Fanned out before the engine starts, so its wake starts no drain of its own
        # that dispatch_due would then defer to.
        await asyncio.to_thread(engine.newsletters.advance)
        fan_out = elapsed()
        await engine.start()
        try:
            while await engine.dispatch_due():
                pass
        finally:
            await engine.stop()
    return elapsed(), fan_out


def _bare(database: Path, subscribers: int, port: int) -> dict[str, Any]:
    """The campaign's own letters, one per locale, pushed by bare aiosmtplib: msg/s."""
    from notifier.mail import assembly
    from notifier.runtime import eventloop
    from notifier.store import campaigns
    from notifier.store.customers import Recipient
    from notifier.store.models import Campaign

    engine = fanout.engine_for(database, port)
    engine.assembler.composer.encoding.eight_bit = True  # as notifier after the sink's EHLO
    try:
        with engine.database.transaction() as session:
            context = campaigns.context(session.get(Campaign, CAMPAIGN_ID))
        by_locale = {}
        for locale in fanout.LOCALES:
            reader = Recipient("N0000000", "lezer@example.nl", None, locale)
            letter = engine.assembler.assemble("bare", assembly.CAMPAIGN_KIND, reader, context)
            by_locale[locale] = letter.envelope
    finally:
        engine.close()
    sender = by_locale[fanout.LOCALES[0]].sender
    jobs = [
        ("lezer@example.nl", by_locale[fanout.LOCALES[n % len(fanout.LOCALES)]].data)
        for n in range(subscribers)
    ]
    return {"rate": eventloop.run(delivery.push(port, sender, jobs))}


def main() -> None:
    import json

    step, database, subscribers, port = (
        sys.argv[1],
        Path(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    if step == "send":
        result = _send(database, port)
    elif step == "bare":
        result = _bare(database, subscribers, port)
    else:
        raise SystemExit(f"unknown step {step!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
