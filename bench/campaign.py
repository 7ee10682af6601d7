"""A newsletter campaign end to end: subscribers → fan-out → delivered, against the bare client.

The subscribers are bulk-inserted first (``bench.fanout``'s ``prepare``
child, not timed). A second child builds the engine on that database as
deployed (its render processes, one per core), creates the campaign,
calls ``advance()`` and dispatches until no mail is due, into the sink:
its elapsed time covers fan-out and delivery; its peak RSS is the sum of
each process's own peak (``VmHWM``: the sending process and every render
process), which bounds the peak of their sum, and the CPU per mail is
counted for each side. A third child is the
baseline: the same campaign's letters (one per locale, assembled by the
engine) pushed by bare aiosmtplib over the same number of connections
(``bench.delivery``'s client), the same count, into the same sink.

Run a child directly: ``python -m bench.campaign send|bare DB N SMTP_PORT``.
The children import the engine inside their functions: every render
process re-imports this module as its main (``multiprocessing``'s spawn),
and should hold what a deployed one holds (the ``notifier`` script's lazy
CLI), not the engine besides.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import fanout
from bench.common import cpu_seconds, fresh_dir, spawned_children, stopwatch
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
    """The sending process's and every render process's peak, summed."""
    sending_peak_mb: float
    sending_cpu: float
    """CPU seconds of the sending process over fan-out and delivery."""
    render_cpu: float
    """CPU seconds of the render processes over the same time."""
    bare_rate: float
    bare_cpu: float
    """CPU seconds of the bare client's process over its push."""

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
        sum(sent["hwm_kb"]) / 1024,
        sent["hwm_kb"][0] / 1024,
        sent["sending_cpu"],
        sent["render_cpu"],
        bare["rate"],
        bare["cpu"],
    )


def _campaign(engine: Any) -> None:
    engine.newsletters.create(
        {"id": CAMPAIGN_ID, "subjects": fanout.SUBJECTS, "content": fanout.CONTENT}
    )


def _send(database: Path, port: int) -> dict[str, Any]:
    """Fan out and deliver the whole campaign as deployed; its time, peak memory and CPU."""
    from bench import workload
    from notifier.runtime import eventloop

    engine = fanout.engine_for(database, port)
    try:
        _campaign(engine)
        measured = eventloop.run(_fan_out_and_deliver(engine))
        measured["sent"] = workload.count_sent(engine).get("sent", 0)
    finally:
        engine.close()
    return measured


async def _fan_out_and_deliver(engine: Any) -> dict[str, Any]:
    """Time, CPU and peaks, read before ``stop`` ends the render processes (and their figures)."""
    import asyncio

    sending_cpu = cpu_seconds()
    with stopwatch() as elapsed:
        # Fanned out before the engine starts, so its wake starts no drain of its own
        # that dispatch_due would then defer to.
        await asyncio.to_thread(engine.newsletters.advance)
        fan_out = elapsed()
        await engine.start()  # boots the render processes: their CPU counts from here
        try:
            while await engine.dispatch_due():
                pass
            seconds = elapsed()
            children = spawned_children()
            measured = {
                "seconds": seconds,
                "fan_out_seconds": fan_out,
                "sending_cpu": cpu_seconds() - sending_cpu,
                "render_cpu": sum(map(cpu_seconds, children)),
                "hwm_kb": [fanout.hwm_kb(), *map(fanout.hwm_kb, children)],
            }
        finally:
            await engine.stop()
    return measured


def _bare(database: Path, subscribers: int, port: int) -> dict[str, Any]:
    """The campaign's own letters, one per locale, pushed by bare aiosmtplib: msg/s."""
    from bench import delivery
    from notifier.mail import assembly
    from notifier.recipient import Recipient
    from notifier.runtime import eventloop
    from notifier.store import campaigns
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
    cpu = cpu_seconds()
    rate = eventloop.run(delivery.push(port, sender, jobs))
    return {"rate": rate, "cpu": cpu_seconds() - cpu}


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
