"""``NOTIFIER_LOG_FORMAT=json``: every line of a whole ``serve`` run is one JSON object."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.runtime import logconfig
from tests.conftest import event
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import free_port


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each line parsed on its own: a line that is not one JSON object fails here."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for line in lines:
        assert isinstance(line, dict)
        assert {"time", "level", "logger", "message"} <= set(line), line
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_serve_run_logs_json_lines_without_personal_data(tmp_path: Path, workers: int) -> None:
    port = free_port()
    env = notifier_env(database_url=f"sqlite:///{tmp_path / 'notifier.db'}", log_format="json")
    env.pop("NOTIFIER_API_TOKENS", None)  # so that the generated token's notice is logged too
    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port), "--workers", str(workers)], env, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve to answer")
        notice = next(
            line["message"]
            for line in json_lines(log.read_text())
            if "this run's API token is: " in line["message"]
        )
        token = notice.rsplit(" ", 1)[1]
        answer = httpx.post(
            f"{base}/v1/events",
            json=event("order.placed", id="evt-json"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 202, answer.text
        assert httpx.get(f"{base}/unsubscribe/secret-looking.token").status_code in (400, 404)
        assert httpx.get(f"{base}/readyz").status_code == 200

        def mail_arrived() -> bool:
            return httpx.get(f"{base}/dev/inbox").text.count('href="/dev/inbox/') == 1

        wait_until(mail_arrived, 30, "the confirmation in the development inbox")
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = log.read_text()
    lines = json_lines(output)
    for personal in ("jan@example.nl", "Jan de Vries", "secret-looking"):
        assert personal not in output
    access = [line for line in lines if line["message"] == "http.request"]
    assert access and all(  # the client's address is personal data too
        set(line)
        == {"time", "level", "logger", "message", "method", "path", "http_version", "status"}
        for line in access
    )
    accepted = [line for line in lines if line["message"] == "event.accepted"]
    assert accepted == [accepted[0] | {"event": "evt-json", "type": "order.placed"}]
    requests = {(line["method"], line["path"], line["status"]) for line in lines if "path" in line}
    assert ("POST", "/v1/events", 202) in requests
    assert {("GET", "/unsubscribe/<token>", 400), ("GET", "/unsubscribe/<token>", 404)} & requests
    started = {line["message"] for line in lines if line["logger"] == "uvicorn.error"}
    assert len([m for m in started if m.startswith("Started server process")]) == workers
    assert any(line["message"].startswith("DEVELOPMENT MODE") for line in lines)


def test_text_lines_stay_as_they_were() -> None:
    formatter = logging.Formatter(logconfig.FORMAT)
    record = logging.LogRecord(
        "notifier.x", logging.INFO, __file__, 1, "event.accepted event=%s", ("e1",), None
    )
    assert formatter.format(record).endswith(" INFO notifier.x event.accepted event=e1")


@pytest.mark.parametrize(
    ("message", "args", "fields"),
    [
        (
            "event.accepted event=%s type=%s",
            ("e 1", "order.placed"),
            {"message": "event.accepted event=e 1 type=order.placed"},
        ),
        (
            "dispatch.retrying message=%s code=%s",
            ("m1", 451),
            {"message": "dispatch.retrying", "message_id": "m1", "code": "451"},
        ),
        (
            'readiness.lost reason="disk is full"',
            (),
            {"message": "readiness.lost", "reason": "disk is full"},
        ),
        ("Started server process [%d]", (7,), {"message": "Started server process [7]"}),
    ],
)
def test_json_fields_come_from_the_pairs_of_a_house_style_message(
    message: str, args: tuple[Any, ...], fields: dict[str, Any]
) -> None:
    record = logging.LogRecord("notifier.x", logging.INFO, __file__, 1, message, args, None)
    line = json.loads(logconfig.JsonFormatter().format(record))
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert {key: line.get(key) for key in fields} == fields
