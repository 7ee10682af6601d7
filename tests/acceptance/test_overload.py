"""Overload: 20 clients posting events as fast as they can for 30 s against ``notifier serve``.

The only refusals allowed are the documented back-pressure answers, 429 and 503, each with a
Retry-After that the clients honour; every event that was accepted (202) must have its mail
delivered, once. The server is a real subprocess on SQLite, the mail goes to the test's SMTP
server, so the API, the enqueue wake-ups and the sender all compete for the same process.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import event
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import SmtpServer, free_port

CLIENTS = 20
SECONDS = 30.0
TOKEN = "test-token"
BACK_PRESSURE = {429, 503}


@dataclass
class Tally:
    accepted: set[str] = field(default_factory=set)
    """The customer addresses of accepted events: one order confirmation each."""
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


async def client(number: int, base_url: str, until: float, tally: Tally) -> None:
    """One shop backend posting ``order.placed`` events back to back, honouring Retry-After."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        sequence = 0
        while time.monotonic() < until:
            sequence += 1
            email = f"c{number}-{sequence}@example.nl"
            body = event("order.placed", id=f"evt-{number}-{sequence}")
            body["customer"] = body["customer"] | {"id": f"C{number}-{sequence}", "email": email}
            try:
                response = await http.post("/v1/events", json=body)
            except httpx.HTTPError as exc:
                tally.problems.append(f"{type(exc).__name__}: {exc}")
                continue
            tally.statuses[response.status_code] += 1
            if response.status_code == 202:
                tally.accepted.add(email)
            elif response.status_code in BACK_PRESSURE and "Retry-After" in response.headers:
                await asyncio.sleep(min(float(response.headers["Retry-After"]), 5.0))
            else:
                tally.problems.append(f"{response.status_code}: {response.text[:200]}")


@pytest.mark.slow
async def test_twenty_clients_for_thirty_seconds_lose_no_mail(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    port = free_port()
    env = notifier_env(
        database_url=f"sqlite:///{tmp_path / 'notifier.db'}",
        smtp_host=smtp_server.host,
        smtp_port=str(smtp_server.port),
        smtp_tls="none",
        api_tokens=TOKEN,
    )
    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port)], env, tmp_path, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until, http_ready(f"{base_url}/healthz"), 60, "serve is up")
        tally = Tally()
        until = time.monotonic() + SECONDS
        await asyncio.gather(*(client(n, base_url, until, tally) for n in range(CLIENTS)))

        assert not tally.problems, (tally.problems[:10], tally.statuses)
        assert set(tally.statuses) <= {202} | BACK_PRESSURE, tally.statuses
        assert len(tally.accepted) > CLIENTS, f"hardly anything was accepted: {tally.statuses}"

        def all_delivered() -> bool:
            return {r for item in smtp_server.received for r in item.recipients} >= tally.accepted

        await asyncio.to_thread(wait_until, all_delivered, 300, f"{len(tally.accepted)} mails")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert code in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "Application shutdown complete" in log.read_text()
    delivered = Counter(r for item in smtp_server.received for r in item.recipients)
    assert set(delivered) == tally.accepted
    assert set(delivered.values()) == {1}
    print(f"overload: {dict(tally.statuses)}, {len(tally.accepted)} mails delivered once each")
