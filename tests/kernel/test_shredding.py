"""Crypto-shredding: each customer's data key lives in the key store; erasure destroys it.

A backup of the database taken before an erasure and restored after it must
not bring the person back; everyone else survives the restore.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from notifier import errors
from notifier.cli import main
from notifier.crypto import PREFIX, Sealer, new_key
from notifier.service import Notifier
from notifier.store import customers
from notifier.store.models import Customer, Message, Order
from notifier.store.resealing import SEALED_COLUMNS
from tests.conftest import POSTGRES_URL, TEST_ENCRYPTION_KEY, customer, event, order
from tests.smtpd import SmtpServer

ZOE = "zoe.celik@voorbeeld.nl"
OTHER = "piet.other@voorbeeld.nl"


def two_customers_with_mail_queued(engine: Notifier) -> None:
    engine.handle_event(
        event("order.placed", customer=customer(id="C-ZOE", email=ZOE), order=order(id="O-Z"))
    )
    engine.handle_event(
        event("order.placed", customer=customer(id="C-PIET", email=OTHER), order=order(id="O-P"))
    )


def schema_of(url: str) -> str:
    return url.split("search_path%3D", 1)[1]


def psql(*args: str, stdin: bytes | None = None) -> bytes:
    assert POSTGRES_URL
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1", *args],
        input=stdin,
        check=True,
        capture_output=True,
    ).stdout


def backup(engine: Notifier, folder: Path) -> None:
    """The database alone, as an operator's backup takes it (never the key store)."""
    url = engine.settings.database_url
    if engine.database.sqlite_file is not None:
        engine.database.checkpoint()
        shutil.copy2(engine.database.sqlite_file, folder / "notifier.db")
        return
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", f"--schema={schema_of(url)}", "test"],
        check=True,
        capture_output=True,
    ).stdout
    (folder / "dump.sql").write_bytes(dump)


def restore(engine: Notifier, folder: Path) -> None:
    url = engine.settings.database_url
    engine.database.dispose()
    if engine.database.sqlite_file is not None:
        database = engine.database.sqlite_file
        for stale in database.parent.glob(database.name + "-*"):
            stale.unlink()
        shutil.copy2(folder / "notifier.db", database)
        return
    psql("-c", f"DROP SCHEMA {schema_of(url)} CASCADE", "test")
    psql("test", stdin=(folder / "dump.sql").read_bytes())


async def test_a_restored_backup_does_not_bring_an_erased_customer_back(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine()
    two_customers_with_mail_queued(engine)
    folder = tmp_path_factory.mktemp("backup")
    backup(engine, folder)
    engine.privacy.erase("C-ZOE")
    restore(engine, folder)

    restored = make_engine()
    with restored.database.transaction() as session:
        row = session.get(Customer, "C-ZOE")
        assert row is not None and row.email.startswith(PREFIX)  # the backup brought the row...
        with pytest.raises(errors.Shredded):
            restored.sealer.open_text(row.email)  # ...but not what it says
        assert customers.get(session, restored.sealer, "C-ZOE") is None
    with pytest.raises(errors.NotFound):
        restored.privacy.export("C-ZOE")

    with caplog.at_level(logging.INFO, logger="notifier"):
        assert await restored.dispatch_due() == 2
    assert [r.recipients for r in smtp_server.received] == [[OTHER]]
    assert ZOE.encode() not in b"".join(r.data for r in smtp_server.received)
    with restored.database.transaction() as session:
        zoes = session.execute(
            select(Message.id, Message.status, Message.reason).where(Message.customer_id == "C-ZOE")
        ).all()
    assert [(status.value, reason) for _, status, reason in zoes] == [("cancelled", "erased")]
    assert f"dispatch.cancelled_erased message={zoes[0].id}" in caplog.text
    assert restored.privacy.export("C-PIET")["customer"]["email"] == OTHER

    # Never retried: the next run finds nothing to do.
    assert await restored.dispatch_due() == 0


def test_erasure_destroys_the_data_key_first(make_engine: Callable[..., Notifier]) -> None:
    engine = make_engine()
    two_customers_with_mail_queued(engine)
    assert engine.keystore.count() == 2
    zoe = engine.sealer.data_keys
    assert zoe is not None
    assert engine.keystore.of_owner(zoe.owner("C-ZOE")) is not None
    engine.privacy.erase("C-ZOE")
    assert engine.keystore.of_owner(zoe.owner("C-ZOE")) is None
    assert engine.keystore.count() == 1
    assert engine.privacy.export("C-PIET")["customer"]["email"] == OTHER


def sealed_rows(engine: Notifier) -> list[tuple[object, ...]]:
    with engine.database.transaction() as session:
        return [
            tuple(row)
            for sealed in SEALED_COLUMNS
            for row in session.execute(select(sealed.key, sealed.column).order_by(sealed.key))
        ]


def test_rotation_rewraps_data_keys_and_leaves_the_rows(
    make_engine: Callable[..., Notifier],
) -> None:
    engine = make_engine()
    two_customers_with_mail_queued(engine)
    engine.choices.update("C-ZOE", {"newsletter": True}, source="account", ip="198.51.100.1")
    before = sealed_rows(engine)
    wrapped = [key.wrapped for key in engine.keystore.page(None, 10)]

    newest = new_key()
    rotated = make_engine(encryption_key=f"{newest},{TEST_ENCRYPTION_KEY}")
    counts = rotated.privacy.rotate_keys(page_size=1)
    assert counts["data keys"] == 2
    assert {v for k, v in counts.items() if k != "data keys"} == {0}
    assert sealed_rows(rotated) == before  # byte for byte
    assert [key.wrapped for key in rotated.keystore.page(None, 10)] != wrapped

    alone = make_engine(encryption_key=newest)  # the old master key dropped
    assert alone.privacy.export("C-ZOE")["customer"]["email"] == ZOE
    assert alone.privacy.export("C-ZOE")["consents"][0]["ip"] == "198.51.100.1"


def test_legacy_master_key_tokens_open_and_rotation_moves_them_under_data_keys(
    make_engine: Callable[..., Notifier],
) -> None:
    engine = make_engine()
    two_customers_with_mail_queued(engine)
    legacy = Sealer([TEST_ENCRYPTION_KEY], "test-secret-key")  # as before data keys
    with engine.database.transaction() as session:
        for model, column in ((Customer, Customer.email), (Order, Order.snapshot)):
            for key, value in session.execute(select(model, column)).all():
                setattr(key, column.key, legacy.seal(engine.sealer.open(value)))
    assert engine.privacy.export("C-ZOE")["customer"]["email"] == ZOE  # legacy opens

    counts = engine.privacy.rotate_keys()
    assert counts["customers.email"] == 2 and counts["orders.snapshot"] == 2
    with engine.database.transaction() as session:
        emails = list(session.scalars(select(Customer.email)))
    assert all(email.startswith(PREFIX) for email in emails)
    assert engine.privacy.export("C-ZOE")["customer"]["email"] == ZOE
    assert engine.privacy.rotate_keys()["customers.email"] == 0


def test_start_refuses_an_empty_key_store_when_the_database_holds_data_key_tokens(
    make_engine: Callable[..., Notifier],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    engine = make_engine()
    two_customers_with_mail_queued(engine)
    elsewhere = tmp_path_factory.mktemp("misplaced") / "keystore.db"
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", engine.settings.database_url)
    monkeypatch.setenv("NOTIFIER_SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("NOTIFIER_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)
    monkeypatch.setenv("NOTIFIER_KEYSTORE_URL", f"sqlite:///{elsewhere}")
    result = CliRunner().invoke(main, ["keys", "rotate"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "NOTIFIER_KEYSTORE_URL" in lines[0], result.output
    assert "Traceback" not in result.output

    monkeypatch.delenv("NOTIFIER_KEYSTORE_URL")  # the right key store: it starts
    assert CliRunner().invoke(main, ["keys", "rotate"]).exit_code == 0
