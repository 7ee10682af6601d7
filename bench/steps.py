"""Where a mail's CPU goes: each step of the send path timed alone, per mail.

The delivery benchmark says how fast mail goes out; this one says what to
make cheaper next. The 14 sample mails (every kind's sample, in every
locale) are put through each step of what ``Assembler.assemble`` does, one
step at a time, ``rounds`` times, and each step's CPU time
(``time.process_time_ns``, this process only) is divided by the mails it
handled:

- links and tokens: ``Assembler.links`` (itsdangerous signing);
- Jinja: the template rendered to MJML;
- MJML: mrml compiling that MJML to HTML;
- plain text: the text part walked from the MJML;
- MIME: ``Composer.compose``, headers and both body parts, quoted-printable
  and (a relay offering 8BITMIME) 8bit;
- the whole ``assemble``, so the sum of the steps can be checked against it;
- SMTP: the client side of sending the composed bytes over one persistent
  ``SmtpTransport`` connection into the sink (the sink's CPU is its own);
- DB: claiming a batch of 500 due messages and marking them sent, on SQLite
  (which runs in this process; waiting for the disk is not CPU).

Timing one step alone keeps its caches warm the way a batch of the same kind
does; the mixed delivery pays a little more than the sum.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import workload
from bench.common import fresh_dir
from bench.sinks import Sink
from notifier.authoring import samples
from notifier.delivery import transport
from notifier.flows import kinds
from notifier.mail import i18n, plaintext, render
from notifier.mail.compose import Headers
from notifier.runtime import eventloop
from notifier.service import Notifier
from notifier.store import outbox
from notifier.store.customers import Recipient
from notifier.vocabulary import MessageStatus

DB_BATCH = 500
"""Messages claimed and marked sent per transaction, as the dispatcher's batches."""


@dataclass(frozen=True)
class Sample:
    kind: kinds.Kind
    locale: str
    recipient: Recipient
    stored: dict[str, Any]
    full: dict[str, Any]
    """The context as the assembler completes it (the sample's own customer, shop, links)."""


@dataclass(frozen=True)
class Steps:
    """Microseconds of CPU per mail, by step, in the order printed."""

    per_mail: dict[str, float]
    mails: int


def run(sink: Sink, rounds: int) -> Steps:
    folder = fresh_dir("steps")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    engine.upgrade_database()
    try:
        return _measure(engine, sink, rounds)
    finally:
        engine.close()


def _measure(engine: Notifier, sink: Sink, rounds: int) -> Steps:
    assembler = engine.assembler
    renderer = assembler.renderer
    chosen = _samples(engine)
    mjml = {id(s): renderer.mjml(s.kind.name, s.locale, s.full) for s in chosen}
    mails = {id(s): renderer.render(s.kind.name, s.locale, s.full) for s in chosen}
    name = {id(s): s.kind.name + render.SUFFIX for s in chosen}
    letters = {
        id(s): assembler.assemble(f"steps-{n}", s.kind.name, s.recipient, s.stored)
        for n, s in enumerate(chosen)
    }
    per_mail: dict[str, float] = {}

    def timed(step: str, work: Callable[[Sample], object]) -> None:
        count = 0
        start = time.process_time_ns()
        for _ in range(rounds):
            for sample in chosen:
                work(sample)
                count += 1
        per_mail[step] = (time.process_time_ns() - start) / count / 1000

    timed("links and tokens", lambda s: assembler.links(s.kind, s.recipient, s.locale, s.stored))
    timed("Jinja (template → MJML)", lambda s: renderer.mjml(s.kind.name, s.locale, s.full))
    timed("MJML (mrml → HTML)", lambda s: render._to_html(mjml[id(s)], name[id(s)]))
    timed("plain text (from the MJML)", lambda s: plaintext.to_text(mjml[id(s)]))
    def mime(sample: Sample) -> object:
        headers = Headers(sample.recipient.email, sample.recipient.name)
        return assembler.composer.compose("steps", sample.kind, mails[id(sample)], headers)

    timed("MIME (headers, both parts quoted-printable)", mime)
    per_mail["sum of the render steps"] = sum(per_mail.values())
    assembler.composer.encoding.eight_bit = True
    timed("MIME with 8BITMIME (both parts 8bit)", mime)
    assembler.composer.encoding.eight_bit = False
    timed(
        "whole assemble (for comparison)",
        lambda s: assembler.assemble("steps", s.kind.name, s.recipient, s.stored),
    )
    payloads = [letters[id(s)].envelope for s in chosen] * rounds
    per_mail["SMTP client (one connection, into the sink)"] = eventloop.run(_smtp(sink, payloads))
    per_mail[f"DB (claim {DB_BATCH} + mark sent, SQLite)"] = _database(engine, len(payloads))
    return Steps(per_mail, len(chosen))


def _samples(engine: Notifier) -> list[Sample]:
    renderer = engine.assembler.renderer
    found: list[Sample] = []
    for kind_name in renderer.kinds():
        sample = samples.load(samples.path(renderer.templates_dir, kind_name))
        for locale in renderer.locales():
            used = i18n.negotiate(locale, renderer.locales(), renderer.default_locale)
            full = {**sample, "customer": {**sample["customer"], "locale": used}}
            customer = full["customer"]
            recipient = Recipient(
                str(customer["id"]), str(customer["email"]), customer.get("name"), used
            )
            found.append(
                Sample(kinds.get(kind_name), used, recipient, samples.send_context(sample), full)
            )
    return found


async def _smtp(sink: Sink, envelopes: list[Any]) -> float:
    """Client CPU per mail over one persistent connection, after it is open."""
    smtp = transport.SmtpTransport(
        transport.SmtpConfig(host="127.0.0.1", port=sink.port, tls="none", connections=1)
    )
    try:
        first = envelopes[0]
        await smtp.send(first.sender, first.recipients, first.data)
        start = time.process_time_ns()
        for envelope in envelopes:
            await smtp.send(envelope.sender, envelope.recipients, envelope.data)
        return (time.process_time_ns() - start) / len(envelopes) / 1000
    finally:
        await smtp.close()


def _database(engine: Notifier, count: int) -> float:
    """CPU per message of claiming due messages and marking them sent, batch by batch."""
    count = max(count, DB_BATCH)
    workload.queue_due(engine, count, prefix="steps")
    now = datetime.now(UTC) + timedelta(seconds=1)
    done = 0
    start = time.process_time_ns()
    while True:
        with engine.database.transaction() as session:
            claimed = outbox.claim_due(
                session,
                engine.sealer,
                owner="steps",
                now=now,
                limit=DB_BATCH,
                lease=timedelta(minutes=5),
            )
        if not claimed:
            break
        with engine.database.transaction() as session:
            sent = [
                outbox.Outcome(m.id, m.attempt, "250 ok", 250, f"<{m.id}@x>", "nl") for m in claimed
            ]
            outbox.record(session, "steps", {MessageStatus.SENT: sent}, now)
        done += len(claimed)
    return (time.process_time_ns() - start) / max(done, 1) / 1000
