"""A mail that fails after acceptance: said in the log, counted, listed, and sent after a repair.

The whole path on SQLite and PostgreSQL with a real SMTP server: a template
broken in a scratch copy fails the mail; the log line, the metrics and the
development inbox say why; the template is fixed, the engine restarted, and
``POST /v1/messages/{id}/retry`` or ``notifier messages retry`` sends it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from notifier import cli
from notifier.clock import FrozenClock
from notifier.mail import render
from notifier.service import Notifier
from notifier.web.app import create_app
from tests.conftest import TEST_ENCRYPTION_KEY, event
from tests.smtpd import SmtpServer

AUTH = {"Authorization": "Bearer test-token"}
BREAK = "{{ order.gift_note }}"
"""What breaks a template: a field no event carries, read without a guard."""


@dataclass(frozen=True)
class Templates:
    """A scratch copy of the project's templates, to break and to mend."""

    folder: Path

    def break_kind(self, kind: str) -> int:
        """Make ``kind``'s template read a missing field; returns the line it does so on."""
        path = self.folder / f"{kind}{render.SUFFIX}"
        text = path.read_text(encoding="utf-8")
        marker = "{% block content %}"
        assert marker in text, f"{path} has no content block to break"
        path.write_text(text.replace(marker, marker + "\n" + BREAK, 1), encoding="utf-8")
        return text[: text.index(marker)].count("\n") + 2

    def mend(self) -> None:
        for path in self.folder.glob(f"*{render.SUFFIX}"):
            text = path.read_text(encoding="utf-8")
            path.write_text(text.replace("\n" + BREAK, ""), encoding="utf-8")


@pytest.fixture
def templates(tmp_path: Path) -> Templates:
    folder = tmp_path / "templates"
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, folder)
    return Templates(folder)


@pytest.fixture
def clock() -> FrozenClock:
    """Near the real time, so that the CLI's ``--since`` (on the system clock) can select."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))


async def api(engine: Notifier, method: str, path: str, **kwargs: Any) -> httpx.Response:
    app = create_app(engine, ["test-token"], run_worker=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=AUTH, **kwargs)


def logged(caplog: pytest.LogCaptureFixture, action: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(action)]


async def test_a_mail_that_fails_to_render_is_loud_and_sent_after_the_fix_and_a_retry(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    templates: Templates,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # the development inbox's folder, on PostgreSQL
    line = templates.break_kind("order_confirmation")
    broken = make_engine(templates_dir=templates.folder, smtp_host=None)
    placed = event("order.placed")
    accepted = broken.handle_event(placed)
    [queued] = accepted.body["messages"]
    caplog.set_level(logging.INFO)
    await broken.dispatch_due()

    message = broken.get_message(queued["id"])
    assert (message.status, message.reason, message.attempts) == ("failed", "render", 1)
    assert f"order_confirmation.mjml.j2:{line}" in (message.last_error or "")
    [line_logged] = logged(caplog, "dispatch.render_failed")
    assert line_logged == (
        f"dispatch.render_failed message={queued['id']} kind=order_confirmation reason=render "
        f"where=order_confirmation.mjml.j2:{line} error=UndefinedError missing=order.gift_note"
    )
    everything = caplog.text
    assert "jan@example.nl" not in everything and "Jan de Vries" not in everything

    metrics = (await api(broken, "GET", "/metrics")).text
    assert 'notifier_render_failures_total{kind="order_confirmation"} 1.0' in metrics
    assert 'notifier_failures_total{kind="order_confirmation",reason="render"} 1.0' in metrics
    assert 'notifier_failures_total{kind="shipping_notice",reason="render"} 0.0' in metrics
    assert 'notifier_failures_total{kind="order_confirmation",reason="smtp_permanent"} 0.0' in (
        metrics
    )

    inbox = (await api(broken, "GET", "/dev/inbox")).text
    failed_section = inbox.split('id="failed"', 1)[1]
    assert queued["id"] in failed_section and "order_confirmation" in failed_section
    assert f"order_confirmation.mjml.j2:{line}" in failed_section
    assert "notifier messages retry" in failed_section

    templates.mend()  # and the engine restarted: templates are compiled once
    fixed = make_engine(templates_dir=templates.folder)
    response = await api(fixed, "POST", f"/v1/messages/{queued['id']}/retry")
    assert response.status_code == 202, response.text
    again = response.json()
    assert (again["status"], again["attempts"], again["reason"]) == ("scheduled", 1, None)
    assert logged(caplog, "message.retried") == [
        f"message.retried message={queued['id']} kind=order_confirmation"
    ]
    await fixed.dispatch_due()
    assert len(smtp_server.received) == 1
    sent = fixed.get_message(queued["id"])
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, None)
    assert 'id="failed"' not in (await api(broken, "GET", "/dev/inbox")).text

    repeat = await api(fixed, "POST", "/v1/events", json=placed)
    assert repeat.status_code == 200
    [now] = repeat.json()["messages"]
    assert (now["id"], now["status"], now["attempts"]) == (queued["id"], "sent", 2)
    assert now["sent_at"] is not None
    assert fixed.handle_event(placed).body["messages"][0]["status"] == "sent"


async def test_a_refusal_for_good_is_logged_with_the_reply_its_address_redacted(
    engine: Notifier, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.fail_next("550 5.1.1 <jan@example.nl>: Recipient address rejected")
    [queued] = engine.handle_event(event("order.placed")).body["messages"]
    caplog.set_level(logging.INFO)
    await engine.dispatch_due()
    assert engine.get_message(queued["id"]).reason == "smtp_permanent"
    [line] = logged(caplog, "dispatch.failed")
    assert line == (
        f"dispatch.failed message={queued['id']} kind=order_confirmation reason=smtp_permanent "
        "code=550 reply='550 5.1.1 <<address>>: Recipient address rejected'"
    )
    metrics = (await api(engine, "GET", "/metrics")).text
    assert (
        'notifier_failures_total{kind="order_confirmation",reason="smtp_permanent"} 1.0' in metrics
    )
    assert 'notifier_render_failures_total{kind="order_confirmation"} 0.0' in metrics


async def test_retry_answers_404_for_an_unknown_id_and_409_for_a_message_not_failed(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    missing = await api(engine, "POST", "/v1/messages/msg_nope/retry")
    assert missing.status_code == 404 and "msg_nope" in missing.json()["message"]
    [queued] = engine.handle_event(event("order.placed")).body["messages"]
    for status in ("scheduled", "sent"):
        conflict = await api(engine, "POST", f"/v1/messages/{queued['id']}/retry")
        assert conflict.status_code == 409, conflict.text
        assert f"is {status}" in conflict.json()["message"]
        await engine.dispatch_due()
    assert len(smtp_server.received) == 1


async def test_a_retried_message_still_honours_erasure_and_unsubscribing(
    make_engine: Callable[..., Notifier], smtp_server: SmtpServer, templates: Templates
) -> None:
    templates.break_kind("order_confirmation")
    broken = make_engine(templates_dir=templates.folder)
    erased = broken.handle_event(event("order.placed")).body["messages"][0]["id"]
    later = event("order.placed", customer={"id": "C43", "email": "piet@example.nl"})
    unsubscribed = broken.handle_event(later).body["messages"][0]["id"]
    await broken.dispatch_due()
    broken.privacy.erase("C42")
    broken.choices.update("C43", {"order_updates": False}, source="account")

    templates.mend()
    fixed = make_engine(templates_dir=templates.folder)
    assert {message.id for message in fixed.retry_failed()} == {erased, unsubscribed}
    await fixed.dispatch_due()
    assert smtp_server.received == []
    assert fixed.get_message(erased).status == "suppressed"
    assert fixed.get_message(unsubscribed).status == "suppressed"


def invoke(database_url: str, smtp_server: SmtpServer, *args: str) -> Result:
    env = {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_SECRET_KEY": "test-secret-key",
        "NOTIFIER_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "NOTIFIER_SMTP_HOST": smtp_server.host,
        "NOTIFIER_SMTP_PORT": str(smtp_server.port),
        "NOTIFIER_SMTP_TLS": "none",
        "NOTIFIER_RENDER_PROCESSES": "0",
    }
    return CliRunner().invoke(cli.main, ["messages", "retry", *args], env=env)


async def test_the_retry_command_by_id_and_by_age_and_kind(
    make_engine: Callable[..., Notifier],
    smtp_server: SmtpServer,
    templates: Templates,
    clock: FrozenClock,
    database_url: str,
) -> None:
    templates.break_kind("order_confirmation")
    templates.break_kind("shipping_notice")
    broken = make_engine(templates_dir=templates.folder)

    def fail(body: dict[str, Any]) -> str:
        message_id: str = broken.handle_event(body).body["messages"][0]["id"]
        return message_id

    old = fail(event("order.placed"))
    await broken.dispatch_due()
    clock.advance(timedelta(hours=2))  # an hour before the real time
    recent = fail(event("order.placed", customer={"id": "C43", "email": "piet@example.nl"}))
    shipped = fail(event("order.shipped"))
    await broken.dispatch_due()
    assert {broken.get_message(i).status for i in (old, recent, shipped)} == {"failed"}

    chosen = invoke(
        database_url, smtp_server, "--failed", "--since", "2h", "--kind", "order_confirmation"
    )
    assert chosen.exit_code == 0, chosen.output
    assert chosen.output.splitlines() == [
        f"retried {recent} (order_confirmation)",
        "1 back in the queue",
    ]
    by_id = invoke(database_url, smtp_server, old, "msg_nope", recent)
    assert by_id.exit_code == 1
    assert f"retried {old} (order_confirmation)" in by_id.output
    assert "not retried: no message 'msg_nope'" in by_id.output
    assert f"not retried: message '{recent}' is scheduled" in by_id.output

    for args, named in [
        ((), "give the ids"),
        (("--failed", old), "not both"),
        ((old, "--since", "2h"), "--since and --kind"),
        (("--failed", "--kind", "order_confirmaton"), "'order_confirmaton'"),
        (("--failed", "--since", "soon"), "'soon'"),
    ]:
        bad = invoke(database_url, smtp_server, *args)
        assert bad.exit_code == 2, (args, bad.output)
        assert named in bad.output and "Traceback" not in bad.output

    templates.mend()
    fixed = make_engine(templates_dir=templates.folder)
    clock.advance(timedelta(hours=2))  # past the real time the command made them due at
    await fixed.dispatch_due()
    assert len(smtp_server.received) == 2
    assert fixed.get_message(shipped).status == "failed"
    everything = invoke(database_url, smtp_server, "--failed")
    assert everything.output.splitlines() == [
        f"retried {shipped} (shipping_notice)",
        "1 back in the queue",
    ]


async def test_a_repeated_ad_hoc_message_answers_with_its_current_status(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    request = {
        "id": "adhoc-1",
        "kind": "order_confirmation",
        "to": {"id": "C42", "email": "jan@example.nl", "locale": "nl"},
        "context": {"order": event("order.placed")["order"], "data": {}},
    }
    first = await api(engine, "POST", "/v1/messages", json=request)
    assert (first.status_code, first.json()["status"]) == (202, "scheduled")
    await engine.dispatch_due()
    repeat = await api(engine, "POST", "/v1/messages", json=request)
    assert (repeat.status_code, repeat.json()["status"]) == (200, "sent")
    assert repeat.json()["sent_at"] is not None
