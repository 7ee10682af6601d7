"""``serve``'s access log: a line per request by default, link tokens redacted; off on request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import event
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import free_port

TOKEN = "test-token"


def serve_and_post(tmp_path: Path, **settings: str) -> str:
    """Run ``serve``, post one event and open one token page; the log it wrote."""
    port = free_port()
    env = notifier_env(
        database_url=f"sqlite:///{tmp_path / 'notifier.db'}", api_tokens=TOKEN, **settings
    )
    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port)], env, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve to answer")
        answer = httpx.post(
            f"{base}/v1/events",
            json=event("order.placed", id="evt-log"),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 202, answer.text
        assert httpx.get(f"{base}/unsubscribe/secret-looking.token").status_code in (400, 404)
        wait_until(lambda: "event.accepted event=evt-log" in log.read_text(), 10, "the event log")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return log.read_text()


@pytest.mark.slow
def test_serve_logs_each_request_without_link_tokens(tmp_path: Path) -> None:
    output = serve_and_post(tmp_path)
    assert '"POST /v1/events HTTP/1.1" 202' in output
    assert "/unsubscribe/<token>" in output
    assert "secret-looking" not in output


@pytest.mark.slow
def test_access_log_off_keeps_notifiers_own_event_log(tmp_path: Path) -> None:
    output = serve_and_post(tmp_path, access_log="0")
    assert "POST /v1/events" not in output
    assert "/unsubscribe/" not in output
    assert "event.accepted event=evt-log type=order.placed" in output
