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
- the render on the compiled path (``mail.compiled``: the shape's HTML and
  plain text filled), which replaces Jinja, MJML and the plain-text walk for a
  mail whose shape is known, i.e. nearly every mail;
- the whole ``assemble``, so the sum of the steps can be checked against it;
- SMTP: the client side of sending the composed bytes over one persistent
  ``SmtpTransport`` connection into the sink (the sink's CPU is its own);
- DB: claiming a batch of 500 due messages and marking them sent, on SQLite
  (which runs in this process; waiting for the disk is not CPU).

A newsletter is timed the same way for ``run_newsletter``'s readers: its
blank made once per locale (untimed, as once per campaign), then per reader
the links, filling the blank, MIME, SMTP and DB. The steps a mail goes
through add up to a total, and each one's share of it is printed; the
other encoding and the whole ``assemble`` are printed beside, outside it.

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
from notifier.mail import assembly, i18n, plaintext, render
from notifier.mail.compose import Headers
from notifier.recipient import Recipient
from notifier.runtime import eventloop
from notifier.service import Notifier
from notifier.store import outbox
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
    """Microseconds of CPU per mail, by step, in the order printed.

    ``path`` holds the steps a mail goes through, one after the other, so
    each one's share of their sum is meaningful; ``aside`` holds figures to
    compare with them (another encoding, the whole ``assemble``), which
    would count twice in that sum.
    """

    path: dict[str, float]
    aside: dict[str, float]
    mails: int

    @property
    def total(self) -> float:
        return sum(self.path.values())


def run(sink: Sink, rounds: int) -> Steps:
    folder = fresh_dir("steps")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    engine.upgrade_database()
    try:
        return _measure(engine, sink, rounds)
    finally:
        engine.close()


def run_newsletter(sink: Sink, rounds: int, recipients: int = 200) -> Steps:
    """The newsletter's steps per recipient: its blank made once per locale, then filled."""
    folder = fresh_dir("steps-newsletter")
    engine = Notifier(workload.settings(workload.sqlite_url(folder), sink.port))
    engine.upgrade_database()
    try:
        return _measure_newsletter(engine, sink, rounds, recipients)
    finally:
        engine.close()


def _measure_newsletter(engine: Notifier, sink: Sink, rounds: int, recipients: int) -> Steps:
    assembler = engine.assembler
    kind = kinds.get(assembly.CAMPAIGN_KIND)
    base = [s for s in _samples(engine) if s.kind.name == assembly.CAMPAIGN_KIND]
    readers = []
    for n in range(recipients):
        sample = base[n % len(base)]
        who = Recipient(
            f"R{n}", workload.customer_email(n), workload.customer_name(n), sample.locale
        )
        readers.append(Sample(kind, sample.locale, who, sample.stored, sample.full))
    tokens = {id(r): assembler._token(kind, r.recipient, r.locale) for r in readers}

    def fill(reader: Sample) -> object:
        return assembler._from_blank(
            kind, reader.recipient, reader.locale, reader.stored, tokens[id(reader)]
        )

    # Filling each reader once first makes every locale's blank: once per campaign, not timed.
    mails = {id(r): fill(r) for r in readers}
    assert all(mail is not None for mail in mails.values()), "a reader fell back to rendering"
    path = {
        "links and tokens": _timed(
            readers,
            rounds,
            lambda r: assembler.links(kind, r.recipient, r.locale, r.stored, tokens[id(r)]),
        ),
        "fill the campaign's blank (name, token, links)": _timed(readers, rounds, fill),
        "MIME (8BITMIME, both parts 8bit)": _timed(
            readers, rounds, _mime(assembler, mails, eight_bit=True)
        ),
    }
    aside = {
        "whole assemble (for comparison)": _timed(
            readers,
            rounds,
            lambda r: assembler.assemble("steps", kind.name, r.recipient, r.stored),
        )
    }
    envelopes = [
        assembler.assemble(f"nl-{n}", kind.name, r.recipient, r.stored).envelope
        for n, r in enumerate(readers)
    ]
    path["SMTP client (one connection, into the sink)"] = eventloop.run(
        _smtp(sink, envelopes * rounds)
    )
    path[f"DB (claim {DB_BATCH} + mark sent, SQLite)"] = _database(engine, len(envelopes) * rounds)
    return Steps(path, aside, len(readers))


def _timed(chosen: list[Sample], rounds: int, work: Callable[[Sample], object]) -> float:
    """CPU microseconds per call of ``work``, over ``rounds`` passes through ``chosen``."""
    start = time.process_time_ns()
    for _ in range(rounds):
        for sample in chosen:
            work(sample)
    return (time.process_time_ns() - start) / (rounds * len(chosen)) / 1000


def _mime(
    assembler: assembly.Assembler, mails: dict[int, Any], *, eight_bit: bool
) -> Callable[[Sample], object]:
    """Composing one sample's rendered mail, with the given body encoding."""

    def compose(sample: Sample) -> object:
        assembler.composer.encoding.eight_bit = eight_bit
        headers = Headers(sample.recipient.email, sample.recipient.name)
        return assembler.composer.compose("steps", sample.kind, mails[id(sample)], headers)

    return compose


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
    path = {
        "links and tokens": _timed(
            chosen, rounds, lambda s: assembler.links(s.kind, s.recipient, s.locale, s.stored)
        ),
        "Jinja (template → MJML)": _timed(
            chosen, rounds, lambda s: renderer.mjml(s.kind.name, s.locale, s.full)
        ),
        "MJML (mrml → HTML)": _timed(
            chosen, rounds, lambda s: render._to_html(mjml[id(s)], name[id(s)])
        ),
        "plain text (from the MJML)": _timed(
            chosen, rounds, lambda s: plaintext.to_text(mjml[id(s)])
        ),
        "MIME (8BITMIME, both parts 8bit)": _timed(
            chosen, rounds, _mime(assembler, mails, eight_bit=True)
        ),
    }
    aside = {
        "render on the compiled path (a shape's HTML and text filled)": _timed(
            chosen, rounds, lambda s: renderer.render(s.kind.name, s.locale, s.full)
        ),
        "MIME without 8BITMIME (both parts quoted-printable)": _timed(
            chosen, rounds, _mime(assembler, mails, eight_bit=False)
        ),
        "whole assemble, quoted-printable (for comparison)": _timed(
            chosen,
            rounds,
            lambda s: assembler.assemble("steps", s.kind.name, s.recipient, s.stored),
        ),
    }
    payloads = [letters[id(s)].envelope for s in chosen] * rounds
    path["SMTP client (one connection, into the sink)"] = eventloop.run(_smtp(sink, payloads))
    path[f"DB (claim {DB_BATCH} + mark sent, SQLite)"] = _database(engine, len(payloads))
    return Steps(path, aside, len(chosen))


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
            leased = outbox.lease_due(
                session, owner="steps", now=now, limit=DB_BATCH, lease=timedelta(minutes=5)
            )
        if not leased:
            break
        with engine.database.reading() as session:
            claimed = outbox.claimed(session, engine.sealer, leased)
        with engine.database.transaction() as session:
            sent = [
                outbox.Outcome(m.id, m.attempt, "250 ok", 250, f"<{m.id}@x>", "nl") for m in claimed
            ]
            outbox.record(session, "steps", {MessageStatus.SENT: sent}, now)
        done += len(claimed)
    return (time.process_time_ns() - start) / max(done, 1) / 1000
