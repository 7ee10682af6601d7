"""README.md's "A first look", run as written against a real ``notifier serve``.

Every ``sh`` block of the section goes through bash unchanged but for the
port: the README names serve's default, 8025, and a test on a shared machine
takes a free one instead. Each answer's messages are the README's promises:
what is due now must arrive in the capture inbox, to the customer and in the
customer's language; what waits must be the review pair, after its delays.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shlex
import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.cli import serve
from notifier.settings import PROJECT_DIR, Settings
from tests.processes import bare_env, http_ready, start, wait_until
from tests.smtpd import free_port

pytestmark = pytest.mark.slow

README = PROJECT_DIR / "README.md"
SECTION = "## A first look"
README_URL = "http://127.0.0.1:8025"
TOKEN = "first-look-token"


@dataclass(frozen=True)
class Block:
    """One ``sh`` block: its text and the JSON bodies its commands post."""

    text: str
    bodies: list[dict[str, Any]]


@dataclass(frozen=True)
class Promise:
    """A message an answer listed: whose, and whether it is due at once."""

    kind: str
    customer: str
    at_once: bool


def first_look() -> list[Block]:
    """The section's ``sh`` blocks, each with the ``-d`` bodies of its curl commands parsed."""
    text = README.read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = []
    for code in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        words = shlex.split(code, comments=True)  # the block's commands, words in a row
        bodies = [json.loads(words[i + 1]) for i, word in enumerate(words) if word == "-d"]
        blocks.append(Block(code, bodies))
    return blocks


def answers(output: str) -> list[Any]:
    """The JSON documents curl printed one after another."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    output = output.strip()
    while at < len(output):
        value, at = decoder.raw_decode(output, at)
        found.append(value)
        while at < len(output) and output[at].isspace():
            at += 1
    return found


def captured(folder: Path) -> list[EmailMessage]:
    mails = []
    for path in sorted(folder.glob("*.eml")):
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        mails.append(mail)
    return mails


def test_the_readme_names_the_port_serve_listens_on() -> None:
    port = next(param for param in serve.serve.params if param.name == "port")
    assert f"http://127.0.0.1:{port.default}" == README_URL
    blocks = first_look()
    assert blocks, f"no sh blocks under {SECTION!r} in {README}"
    for block in blocks:
        assert "curl" in block.text and README_URL in block.text, block.text


def test_every_command_of_the_first_look_runs_as_written_and_its_mail_arrives(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The newcomer's environment; render processes are the wheel test's part.
    env = bare_env() | {
        "NOTIFIER_API_TOKENS": TOKEN,
        "NOTIFIER_RENDER_PROCESSES": "0",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port)], env, tmp_path, log)
    promised: dict[str, Promise] = {}
    expected: Counter[tuple[str, str]] = Counter()
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve to answer")
        for block in first_look():
            posted_at = datetime.now().astimezone()
            run = subprocess.run(
                ["bash", "-e", "-c", block.text.replace(README_URL, base)],
                env=env | {"TOKEN": TOKEN},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 0, f"{block.text}\n{run.stderr}"
            replies = answers(run.stdout)
            posted = [reply for reply in replies if isinstance(reply, dict)]
            assert len(posted) == len(block.bodies), f"{block.text}\n{run.stdout}"
            for body, reply in zip(block.bodies, posted, strict=True):
                assert reply.get("event_id") == body["id"], reply
                customer = body["customer"]
                for message in reply["messages"]:
                    wait = datetime.fromisoformat(message["send_after"]) - posted_at
                    at_once = wait <= timedelta(seconds=5)
                    promised[message["id"]] = Promise(message["kind"], customer["id"], at_once)
                    if at_once:
                        expected[(customer["email"], customer["locale"])] += 1
                    else:
                        check_review_delay(message["kind"], wait)
            for listing in (reply for reply in replies if isinstance(reply, list)):
                asked = re.search(r"/v1/customers/([^/ ]+)/messages", block.text)
                assert asked is not None, block.text
                listed = {message["id"] for message in listing}
                theirs = {key for key, kept in promised.items() if kept.customer == asked[1]}
                assert theirs and theirs <= listed, (theirs, listing)

        assert expected, "the first look promises no mail at once"
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def status(message_id: str) -> tuple[str, str | None]:
            answer = httpx.get(f"{base}/v1/messages/{message_id}", headers=auth).json()
            return answer["status"], answer.get("last_error")

        due = [message_id for message_id, kept in promised.items() if kept.at_once]

        def settled() -> bool:
            return all(status(message_id)[0] in ("sent", "failed") for message_id in due)

        wait_until(settled, 30, "the mail due at once to be sent")
        outcomes = {f"{promised[key].kind} {key}": status(key) for key in due}
        assert all(outcome == ("sent", None) for outcome in outcomes.values()), outcomes
        inbox = tmp_path / ".notifier-inbox"
        wait_until(lambda: len(captured(inbox)) >= expected.total(), 10, "the mail in the inbox")
        arrived = Counter(
            (str(mail["To"]).split("<")[-1].rstrip(">"), str(mail["Content-Language"]))
            for mail in captured(inbox)
        )
        assert arrived == expected
    finally:
        server.terminate()
        server.wait(timeout=30)


def check_review_delay(kind: str, wait: timedelta) -> None:
    """A mail that waits is one of the review pair, due after its delay and within a day more."""
    defaults = Settings.model_fields
    delays = {
        "review_products": defaults["review_products_delay"].default,
        "review_service": defaults["review_service_delay"].default,
    }
    assert kind in delays, f"{kind} waits {wait}, though the first look promises it at once"
    assert delays[kind] - timedelta(minutes=1) <= wait <= delays[kind] + timedelta(days=1), (
        kind,
        wait,
    )
