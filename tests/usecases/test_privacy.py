"""Privacy as promised: nothing personal in the clear, erasure, export, retention, rotation."""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier import errors, keyring
from notifier.clock import FrozenClock
from notifier.crypto import new_key
from notifier.mail import tokens
from notifier.service import Notifier
from notifier.store import bounces, customers
from notifier.web import logs
from notifier.web.app import create_app
from tests import ROOT
from tests.conftest import TEST_ENCRYPTION_KEY, customer, event, order
from tests.ondisk import stored_bytes
from tests.smtpd import SmtpServer

EMAIL = "zoe.celik@voorbeeld.nl"
NAME = "Zoë Çelik-Verhoeven"
FIRST_NAME = "Zoë-Anouk"
STREET = "Kerkstraat 117"
POSTCODE = "3761 KV"
CITY = "Bunschoten-Spakenburg"
CONSENT_IP = "203.0.113.9"
LINE = "Accu Varta Silver Dynamic"
QUESTION = "Past de Varta Silver accu wel in uw Peugeot 308 SW uit 2019?"
SECRETS = (EMAIL, NAME, STREET, LINE)
EVERY_DATUM = (EMAIL, NAME, FIRST_NAME, STREET, POSTCODE, CITY, CONSENT_IP, LINE, QUESTION)
"""Zoë's personal data, each one only hers: a raw-byte search for it finds her or nothing."""


def zoe(**changes: str) -> dict[str, str]:
    return customer("nl", id="C-ZOE", email=EMAIL, name=NAME) | changes


def zoe_order() -> dict[str, object]:
    base = order(id="O-ZOE", number="WP-7")
    base["lines"] = [{"sku": "BAT-77", "name": LINE, "quantity": 1, "unit_price": "149.00"}]
    base["shipping_address"] = {
        "name": NAME,
        "street": STREET,
        "postcode": POSTCODE,
        "city": CITY,
        "country": "NL",
    }
    return base


async def run_every_kind(engine: Notifier, clock: FrozenClock) -> None:
    """Every message kind for one customer, all delivered."""
    for kind in (
        "order.placed",
        "order.shipped",
        "order.verification_requested",
        "order.delivered",
    ):
        extra: dict[str, Any] = (
            {"data": {"question": QUESTION}} if kind == "order.verification_requested" else {}
        )
        engine.handle_event(event(kind, customer=zoe(), order=zoe_order(), **extra))
    engine.handle_event(event("newsletter.subscribed", customer=zoe()))
    engine.choices.update("C-ZOE", {"newsletter": True}, source="account", ip=CONSENT_IP)
    sample = json.loads((ROOT / "templates/samples/newsletter.json").read_text())
    engine.newsletters.create(
        {"id": "nl-1", "subjects": {"nl": "Nieuws", "en": "News"}, "content": sample["newsletter"]}
    )
    engine.newsletters.advance()
    await engine.dispatch_due()
    clock.advance(timedelta(days=11))
    await engine.dispatch_due()


def leaks(data: bytes, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """The secrets found in ``data`` as UTF-8, UTF-16-LE, hex (bytea columns dump as hex) or
    base64 (standard or URL-safe, at each of the three alignments a datum may have)."""
    lowered = data.lower()
    return [
        secret
        for secret in secrets
        if any(form in data for form in encodings(secret))
        or secret.encode().hex().encode() in lowered
    ]


def encodings(secret: str) -> list[bytes]:
    """``secret`` as it could lie in a file: UTF-8, UTF-16-LE and base64 at three offsets.

    A datum encoded after ``k`` other bytes shares only the characters that
    encode its own bits: those are the ones searched.
    """
    raw = secret.encode()
    forms = [raw, secret.encode("utf-16-le")]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        own = encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6]
        forms += [own, own.translate(bytes.maketrans(b"+/", b"-_"))]
    return forms


def counts_by_status(engine: Notifier) -> Counter[str]:
    """Every message's status as ``notifier status`` counts them: no customer named."""
    counts: Counter[str] = Counter()
    for row in engine.status().depth:
        counts[row.status] += row.count
    return counts


async def test_nothing_personal_is_stored_in_the_clear(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    await run_every_kind(engine, clock)
    kinds = {m.kind for m in engine.customer_messages("C-ZOE") if m.status == "sent"}
    assert kinds == {
        "order_confirmation",
        "shipping_notice",
        "verification_question",
        "review_products",
        "review_service",
        "newsletter_confirm",
        "newsletter",
    }
    delivered = b"".join(r.data for r in smtp_server.received)
    assert EMAIL.encode() in delivered  # the secrets are real and did travel...
    assert leaks(stored_bytes(engine)) == []  # ...but are never at rest in the clear


async def test_no_datum_lies_on_disk_in_any_encoding_before_or_after_erasure(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    clock: FrozenClock,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every kind sent, a bounce kept, webhooks queued: the database files (main, WAL), the
    key store's, the key file and the log hold none of Zoë's data; after her erasure not
    even her id."""
    key_file = tmp_path_factory.mktemp("secrets") / "notifier.keys"
    keyring.write_new(key_file)
    engine = make_engine(
        secret_key=None,
        encryption_key=None,
        key_file=key_file,
        webhook_url="http://127.0.0.1:9/hooks",
        webhook_secret="whsec_" + "A" * 32,
    )
    with caplog.at_level(logging.DEBUG, logger="notifier"):
        await run_every_kind(engine, clock)
        sent = [m for m in engine.customer_messages("C-ZOE") if m.status == "sent"]
        assert len(sent) == 7
        # Arranges a state: a kept report whose detail names her, as a relay's might.
        with engine.database.transaction() as session:
            bounces.add(
                session,
                engine.sealer,
                source="smtp",
                kind="soft_bounce",
                message_id=sent[0].id,
                status_code="4.2.2",
                detail=f"4.2.2 mailbox of {NAME} in {CITY} is full",
                raw=None,
                now=clock.now(),
            )
        assert engine.privacy.export("C-ZOE")["reports"][0]["detail"].endswith("is full")

        def on_disk() -> bytes:
            # notifier's log; the test SMTP server's own logs the mail it received
            logged = "\n".join(
                f"{r.name} {r.getMessage()}"
                for r in caplog.records
                if r.name.startswith("notifier")
            )
            return stored_bytes(engine) + key_file.read_bytes() + logged.encode()

        assert leaks(on_disk(), EVERY_DATUM) == []
        assert b"data_keys" in stored_bytes(engine)  # the key store is searched too
        assert b"C-ZOE" in stored_bytes(engine)  # the search can find what is there
        engine.privacy.erase("C-ZOE")
        assert leaks(on_disk(), EVERY_DATUM) == []
        assert b"C-ZOE" not in stored_bytes(engine)
    # Physical storage on purpose: the WAL, emptied by erasure's checkpoint.
    if engine.database.sqlite_file is not None:
        assert Path(f"{engine.database.sqlite_file}-wal").stat().st_size == 0


async def test_erasure_removes_the_customer_everywhere_and_spares_others(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    await run_every_kind(engine, clock)
    engine.handle_event(event("order.placed", customer=customer("en", id="C-OTHER")))
    engine.handle_event(event("order.placed", customer=zoe(), order=order(id="O-ZOE-2")))
    before = len(engine.customer_messages("C-ZOE"))
    held = counts_by_status(engine)

    assert engine.privacy.erase("C-ZOE") == before

    assert engine.customer_messages("C-ZOE") == []
    with pytest.raises(errors.NotFound):
        engine.privacy.export("C-ZOE")
    with pytest.raises(errors.NotFound):
        engine.choices.states("C-ZOE")
    assert leaks(stored_bytes(engine)) == []
    kept = counts_by_status(engine)
    assert kept.total() == held.total()  # her messages kept as anonymous counts
    assert kept["cancelled"] > held["cancelled"]  # the unsent confirmation of O-ZOE-2
    assert [m.kind for m in engine.customer_messages("C-OTHER")] == ["order_confirmation"]

    # A later event for the same customer id starts clean.
    engine.handle_event(event("order.placed", customer=zoe(), order=order(id="O-ZOE-3")))
    assert [m.kind for m in engine.customer_messages("C-ZOE")] == ["order_confirmation"]
    assert engine.choices.states("C-ZOE")["newsletter"] is False


async def test_export_holds_everything_decrypted(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    await run_every_kind(engine, clock)
    tagged = zoe(first_name="Zoë") | {"tags": ["vip", "b2b"]}
    engine.handle_event(event("order.delivered", customer=tagged, order=zoe_order()))
    exported = engine.privacy.export("C-ZOE")
    assert exported["customer"] == {
        "id": "C-ZOE",
        "email": EMAIL,
        "name": NAME,
        "first_name": "Zoë",
        "locale": "nl",
        "tags": ["b2b", "vip"],
    }
    assert exported["preferences"]["newsletter"] is True
    assert exported["consents"][0]["ip"] == "203.0.113.9"
    contexts = [m["context"] for m in exported["messages"] if m["kind"] == "order_confirmation"]
    assert contexts[0]["order"]["lines"][0]["name"] == LINE
    json.dumps(exported)


async def test_retention_purges_old_context_and_keeps_status(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    engine.handle_event(event("order.placed", customer=zoe(), order=zoe_order()))
    engine.handle_event(event("order.delivered", customer=zoe(), order=zoe_order()))
    await engine.dispatch_due()
    clock.advance(timedelta(days=89))
    assert engine.privacy.purge_expired() == 0
    clock.advance(timedelta(days=2))
    assert engine.privacy.purge_expired() == 1  # the sent confirmation; reviews are still pending
    exported = engine.privacy.export("C-ZOE")
    confirmation = next(m for m in exported["messages"] if m["kind"] == "order_confirmation")
    assert confirmation["context"] is None and confirmation["status"] == "sent"
    assert all(m["context"] for m in exported["messages"] if m["kind"] != "order_confirmation")


async def test_key_rotation_keeps_every_message_readable_and_sendable(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    old = make_engine()
    old.handle_event(event("order.delivered", customer=zoe(first_name="Zoë"), order=zoe_order()))
    old.choices.update("C-ZOE", {"newsletter": True}, source="account", ip="198.51.100.1")

    rotated = make_engine(encryption_key=f"{new_key()},{TEST_ENCRYPTION_KEY}")
    counts = rotated.privacy.rotate_keys(page_size=1)
    # The customer's data key is re-wrapped; the rows sealed with it stay as they are.
    assert counts == {
        "data keys": 1,
        "customers.email": 0,
        "customers.name": 0,
        "customers.first_name": 0,
        "messages.context": 0,
        "consents.ip": 0,
        "orders.snapshot": 0,
        "suppressions.detail": 0,
        "bounces.detail": 0,
        "bounces.raw": 0,
    }
    assert set(rotated.privacy.rotate_keys().values()) == {0}

    clock.advance(timedelta(days=11))  # past the data key cache's time (datakeys.READ_TTL)
    assert await rotated.dispatch_due() == 2
    assert [r.recipients for r in smtp_server.received] == [[EMAIL], [EMAIL]]
    with pytest.raises(errors.ConfigurationError):
        old.privacy.export("C-ZOE")  # the old key alone no longer opens the data


async def test_smtp_replies_are_stored_without_addresses(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    smtp_server.fail_next(f"451 4.2.2 <{EMAIL}>: mailbox full")
    engine.handle_event(event("order.placed", customer=zoe(), order=zoe_order()))
    await engine.dispatch_due()
    [message] = engine.customer_messages("C-ZOE")
    assert message.last_error == "451 4.2.2 <<address>>: mailbox full"
    assert leaks(stored_bytes(engine)) == []


async def test_public_pages_are_rate_limited(
    make_engine: Callable[..., Notifier],
) -> None:
    engine = make_engine(page_rate_limit="5/minute")
    app = create_app(engine, ["test-token"], run_worker=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        codes = [(await client.get("/preferences/not-a-token")).status_code for _ in range(7)]
        api = await client.get("/healthz")
    assert codes[:5] == [400] * 5
    assert codes[5:] == [429, 429]
    assert api.status_code == 200


def test_access_logs_never_show_link_tokens(caplog: pytest.LogCaptureFixture) -> None:
    logs.install()
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5",
            "GET",
            "/unsubscribe/eyJhbGc.abc.def",
            "1.1",
            200,
        )
    assert "eyJhbGc" not in caplog.text
    assert "/unsubscribe/<token>" in caplog.text


async def test_erasure_over_http(engine: Notifier) -> None:
    engine.handle_event(event("order.placed", customer=zoe(), order=zoe_order()))
    app = create_app(engine, ["test-token"], run_worker=False)
    auth = {"Authorization": "Bearer test-token"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        exported = await client.get("/v1/customers/C-ZOE/export", headers=auth)
        assert exported.status_code == 200 and exported.json()["customer"]["email"] == EMAIL
        erased = await client.delete("/v1/customers/C-ZOE", headers=auth)
        assert erased.status_code == 200
        assert (await client.get("/v1/customers/C-ZOE/export", headers=auth)).status_code == 404
        assert (await client.delete("/v1/customers/C-ZOE", headers=auth)).status_code == 404


def test_keys_rotate_command(
    make_engine: Callable[..., Notifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from notifier.cli import main

    engine = make_engine()
    engine.handle_event(event("order.placed", customer=zoe(), order=zoe_order()))
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", engine.settings.database_url)
    monkeypatch.setenv("NOTIFIER_SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("NOTIFIER_ENCRYPTION_KEY", f"{new_key()},{TEST_ENCRYPTION_KEY}")
    result = CliRunner().invoke(main, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    # The data key is re-wrapped; the rows it seals are not rewritten.
    assert "data keys                    1 re-wrapped" in result.output
    assert "customers.email              0 re-encrypted" in result.output
    assert "messages.context             0 re-encrypted" in result.output


COMPLAINT = "Zoë Çelik-Verhoeven, Kerkstraat 117: stop mailing me"


async def test_export_is_complete_and_suppression_details_are_sealed_and_erased(
    engine: Notifier, smtp_server: SmtpServer, clock: FrozenClock
) -> None:
    await run_every_kind(engine, clock)
    engine.choices.suppress(EMAIL, "complaint", COMPLAINT)
    exported = engine.privacy.export("C-ZOE")
    assert {e["type"] for e in exported["events"]} >= {"order.placed", "newsletter.subscribed"}
    sent = [m for m in exported["messages"] if m["status"] == "sent"]
    assert sent and all(m["message_id_header"] for m in sent)
    attempts = [a for m in sent for a in m["delivery_attempts"]]
    assert attempts and all(a["at"] and a["outcome"] for a in attempts)
    assert exported["suppression"]["reason"] == "complaint"
    assert exported["suppression"]["detail"] == COMPLAINT
    assert "phone" in exported["not_stored"]["phone_numbers"]
    json.dumps(exported)
    stored = stored_bytes(engine)
    assert COMPLAINT.encode() not in stored and b"stop mailing me" not in stored

    engine.privacy.erase("C-ZOE")
    with pytest.raises(errors.NotFound):
        engine.privacy.export("C-ZOE")
    assert engine.choices.suppression(EMAIL).detail is None  # the suppression stays, bare


async def test_a_recreated_customer_id_does_not_revive_old_links(engine: Notifier) -> None:
    engine.handle_event(event("order.placed", customer=zoe(), order=zoe_order()))
    await engine.dispatch_due()
    app = create_app(engine, ["test-token"], run_worker=False)
    # Arranges a state: her token generation, to sign links with and without it.
    with engine.database.transaction() as session:
        recipient = customers.get(session, engine.sealer, "C-ZOE")
    assert recipient is not None and len(recipient.token_generation) == 32
    old = engine.preference_tokens.issue(
        tokens.Claims("C-ZOE", "reviews", "nl", recipient.token_generation)
    )
    legacy = engine.preference_tokens.issue(tokens.Claims("C-ZOE", "reviews", "nl"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get(f"/preferences/{old}")).status_code == 200
        assert (await client.get(f"/preferences/{legacy}")).status_code == 400
        engine.privacy.erase("C-ZOE")
        engine.handle_event(event("order.placed", customer=zoe(), order=order(id="O-NEW")))
        assert (await client.get(f"/preferences/{old}")).status_code == 400
        one_click = await client.post(
            f"/unsubscribe/{old}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 400
    assert engine.choices.states("C-ZOE")["reviews"] is True  # the old link changed nothing
