"""Importing subscribers with the consent proof of the shop's previous tool.

Through the Python API, the HTTP API (NDJSON and a JSON list) and the
command as a subprocess, on a real SQLite file or PostgreSQL; the double
opt-in mail is read back from a real aiosmtpd sink.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from notifier import settings
from notifier.service import Notifier
from notifier.store.models import Consent, Customer, Preference
from notifier.usecases import subscriber_import
from tests.asgi import api_client
from tests.ondisk import stored_bytes
from tests.processes import notifier_env
from tests.smtpd import SmtpServer

PROOF = {
    "at": "2024-03-01T12:00:00+01:00",
    "source": "signup_form",
    "ip": "203.0.113.7",
    "text_version": "laposta-2024",
}


def row(number: int, proof: dict[str, Any] | None = PROOF, **customer: Any) -> dict[str, Any]:
    base = {
        "id": f"OLD{number}",
        "email": f"lezer{number}@example.nl",
        "first_name": "Lezer",
        "locale": "en" if number % 2 else "nl",
        "tags": ["b2b"] if number % 3 == 0 else [],
    }
    found: dict[str, Any] = {"customer": base | customer}
    if proof is not None:
        found["consent"] = proof
    return found


def count(engine: Notifier, model: Any, **where: Any) -> int:
    """Rows in ``model``'s table: that a refused or repeated row stored nothing, anywhere."""
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    # Row counts on purpose: no look-up by customer reaches a row stored under no customer.
    with engine.database.transaction() as session:
        return int(session.scalar(query) or 0)


def messages_queued(engine: Notifier) -> int:
    """Every message on record, whatever its status, as ``notifier status`` counts them."""
    return sum(row.count for row in engine.status().depth)


def numbered(rows: list[Any]) -> list[subscriber_import.Row]:
    return list(enumerate(rows, start=1))


def test_rows_with_proof_become_confirmed_subscribers_with_the_proof_exported(
    engine: Notifier,
) -> None:
    done = engine.import_subscribers(numbered([row(1), row(2)]))
    assert (done.rows, done.imported, done.confirmed, done.errors) == (2, 2, 2, [])
    assert engine.choices.states("OLD1")["newsletter"] is True
    exported = engine.privacy.export("OLD1")
    assert exported["customer"]["email"] == "lezer1@example.nl"
    assert exported["customer"]["locale"] == "en"
    assert exported["consents"] == [
        {
            "category": "newsletter",
            "source": "signup_form",
            "ip": "203.0.113.7",
            "text_version": "laposta-2024",
            "given_at": "2024-03-01T11:00:00+00:00",
        }
    ]
    assert [change["source"] for change in exported["preference_changes"]] == ["import"]


def test_bad_rows_are_named_by_line_and_field_and_the_good_ones_go_in(engine: Notifier) -> None:
    rows = [
        row(1),
        row(2, email="not-an-address"),
        row(3, proof=PROOF | {"at": "2024-03-01T12:00:00"}),
        row(4, proof=PROOF | {"ip": "300.1.2.3"}),
        ["not", "an", "object"],
        row(6, proof={"source": "signup_form"}),
        row(7, tags=["VIP Klant"]),
        row(8, proof=PROOF | {"at": "2030-01-01T00:00:00+00:00"}),
        row(9),
    ]
    done = engine.import_subscribers(numbered(rows))
    assert done.rows == 9 and done.imported == 2
    assert [(problem.line, problem.field) for problem in done.errors] == [
        (2, "customer.email"),
        (3, "consent.at"),
        (4, "consent.ip"),
        (5, None),
        (6, "consent.at"),
        (7, "customer.tags.0"),
        (8, "consent.at"),
    ]
    assert count(engine, Customer) == 2  # OLD1 and OLD9, nothing of the others
    assert count(engine, Consent) == 2 and count(engine, Preference) == 2


def test_rows_without_proof_stay_unconfirmed_and_get_the_opt_in_mail_only_if_asked(
    engine: Notifier,
) -> None:
    quiet = engine.import_subscribers(numbered([row(1, proof=None)]))
    assert (quiet.unconfirmed, quiet.confirm_mails) == (1, 0)
    assert engine.choices.states("OLD1")["newsletter"] is False
    assert messages_queued(engine) == 0

    asked = engine.import_subscribers(numbered([row(1, proof=None), row(2, proof=None)]), "send")
    assert (asked.unconfirmed, asked.confirm_mails) == (2, 2)
    queued = [m for customer_id in ("OLD1", "OLD2") for m in engine.customer_messages(customer_id)]
    assert len(queued) == messages_queued(engine)  # theirs are all there are
    assert {message.kind for message in queued} == {"newsletter_confirm"}
    assert all("OLD" not in message.id for message in queued)  # no customer id in the id

    by_row = engine.import_subscribers(numbered([row(3, proof=None) | {"confirm": "send"}]))
    assert by_row.confirm_mails == 1


async def test_the_opt_in_mail_of_an_import_goes_out_with_its_confirm_link(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.import_subscribers(numbered([row(1, proof=None)]), "send")
    await engine.dispatch_due()
    [received] = smtp_server.received
    assert received.recipients == ["lezer1@example.nl"]
    assert "https://notifier.test/confirm/" in received.message.as_string()


def test_importing_the_same_rows_again_changes_nothing(engine: Notifier) -> None:
    rows = numbered([row(1), row(2, proof=None), row(3)])
    first = engine.import_subscribers(rows, "send")
    again = engine.import_subscribers(rows, "send")
    assert (first.confirmed, first.confirm_mails) == (2, 1)
    assert (again.imported, again.confirmed, again.confirm_mails) == (3, 2, 0)
    assert count(engine, Customer) == 3
    assert count(engine, Consent) == 2
    assert count(engine, Preference) == 2
    assert messages_queued(engine) == 1


def test_a_customer_who_turned_the_newsletter_off_here_stays_off(engine: Notifier) -> None:
    engine.import_subscribers(numbered([row(1)]))
    engine.choices.update("OLD1", {"newsletter": False}, source="account")
    done = engine.import_subscribers(numbered([row(1, proof=PROOF | {"source": "other_form"})]))
    assert (done.confirmed, done.kept_unsubscribed) == (0, 1)
    assert engine.choices.states("OLD1")["newsletter"] is False
    assert count(engine, Consent) == 1


def test_flat_rows_as_a_csv_gives_them(engine: Notifier, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "id,email,first_name,locale,tags,at,source,ip,text_version\n"
        "C1,jan@example.nl,Jan,nl,vip b2b,2024-03-01T12:00:00+01:00,checkout,,v1\n"
        "C2,an@example.nl,An,en,,,,,\n"
        "C3,bad address,Piet,nl,,,,,\n",
        encoding="utf-8",
    )
    with path.open(newline="") as lines:
        done = engine.import_subscribers(subscriber_import.csv_rows(lines))
    assert (done.imported, done.confirmed, done.unconfirmed) == (2, 1, 1)
    assert [(problem.line, problem.field) for problem in done.errors] == [(4, "email")]
    # No look-up shows a customer's tags (the export leaves them out): read as stored.
    with engine.database.transaction() as session:
        assert session.get(Customer, "C1").tags == "|b2b|vip|"  # type: ignore[union-attr]


def test_more_rows_than_a_chunk_and_a_repeat_inside_one(
    engine: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriber_import, "CHUNK", 7)
    rows = [row(number) for number in range(20)] + [row(3, email="nieuw@example.nl")]
    done = engine.import_subscribers(numbered(rows))
    assert (done.imported, done.errors) == (21, [])
    assert count(engine, Customer) == 20 and count(engine, Consent) == 20
    assert engine.privacy.export("OLD3")["customer"]["email"] == "nieuw@example.nl"


@pytest.fixture
async def http(
    make_engine: Callable[..., Notifier],
) -> AsyncIterator[tuple[httpx.AsyncClient, Notifier]]:
    engine = make_engine()
    async with api_client(engine, authorized=True) as client:
        yield client, engine


async def test_http_import_takes_ndjson_and_a_json_list(
    http: tuple[httpx.AsyncClient, Notifier],
) -> None:
    client, engine = http
    lines = [json.dumps(row(1)), "", "{not json", json.dumps(row(4, proof=None))]
    answer = await client.post(
        "/v1/subscribers/import?confirm=send",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["imported"], body["confirmed"], body["confirm_mails"]) == (2, 1, 1)
    assert [(error["line"], error["field"]) for error in body["errors"]] == [(3, None)]

    listed = await client.post("/v1/subscribers/import", json=[row(5), {"customer": {}}])
    assert listed.status_code == 200
    assert [(e["line"], e["field"]) for e in listed.json()["errors"]] == [(2, "customer.id")]
    assert count(engine, Customer) == 3

    refused = await client.post("/v1/subscribers/import", json={"rows": []})
    assert refused.status_code == 422 and "body" in refused.json()["fields"]


async def test_http_import_takes_a_body_over_the_usual_limit(
    http: tuple[httpx.AsyncClient, Notifier],
) -> None:
    client, _ = http
    rows = [row(number, first_name="L" * 250) for number in range(4000)]
    body = "\n".join(json.dumps(one) for one in rows).encode()
    assert len(body) > 1024 * 1024
    answer = await client.post(
        "/v1/subscribers/import", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert answer.status_code == 200 and answer.json()["imported"] == 4000
    events = await client.post(
        "/v1/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert events.status_code == 413


def test_the_command_imports_a_file_and_names_bad_rows(tmp_path: Path) -> None:
    env = notifier_env(database_url=f"sqlite:///{tmp_path / 'notifier.db'}")
    path = tmp_path / "list.ndjson"
    path.write_text(
        json.dumps(row(1)) + "\n" + json.dumps(row(2, email="nope")) + "\n", encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "notifier", "subscribers", "import", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert "1 of 2 rows imported: 1 confirmed" in result.stdout
    assert f"{path}:2: customer.email:" in result.stderr
    overrides = {
        key.removeprefix("NOTIFIER_").lower(): value
        for key, value in env.items()
        if key.startswith("NOTIFIER_")
    }
    engine = Notifier(settings.load(**overrides))
    try:
        assert engine.choices.states("OLD1")["newsletter"] is True
    finally:
        engine.close()


def test_phone_fields_in_import_rows_are_dropped_counted_and_logged_by_path(
    engine: Notifier, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "id,email,first_name,locale,telefoonnummer,mobile\n"
        "C1,jan@example.nl,Jan,nl,+31 6 12345678,06-87654321\n",
        encoding="utf-8",
    )
    nested = row(2, phone="+31 30 1234567") | {"consent": PROOF | {"gsm": "0612312312"}}
    with caplog.at_level(logging.WARNING, logger="notifier"):
        with path.open(newline="") as lines:
            flat = engine.import_subscribers(subscriber_import.csv_rows(lines))
        done = engine.import_subscribers(numbered([nested]))
    assert (flat.imported, done.imported, flat.errors, done.errors) == (1, 1, [], [])
    metrics = engine.metrics.render().decode()
    assert 'notifier_phone_fields_dropped_total{section="customer"} 3.0' in metrics
    assert 'notifier_phone_fields_dropped_total{section="consent"} 1.0' in metrics
    logged = sorted(r.getMessage() for r in caplog.records if "phone_dropped" in r.getMessage())
    assert logged == [
        "intake.phone_dropped path=consent.gsm request=import-line-1",
        "intake.phone_dropped path=customer.mobile request=import-line-1",
        "intake.phone_dropped path=customer.phone request=import-line-1",
        "intake.phone_dropped path=customer.telefoonnummer request=import-line-1",
    ]
    assert "1234" not in " ".join(logged)
    stored = stored_bytes(engine)
    assert not [p for p in ("12345678", "87654321", "1234567", "12312312") if p.encode() in stored]
