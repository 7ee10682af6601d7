"""The operator's commands, run as real subprocesses: serve on the embedded default, db, status."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from notifier import cli, settings
from notifier.mail import render
from tests.conftest import event
from tests.processes import http_ready, notifier_env, start, wait_until
from tests.smtpd import free_port


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def bare_env() -> dict[str, str]:
    """No NOTIFIER_ settings at all: the embedded default a newcomer gets."""
    return {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}


@pytest.mark.slow
def test_serve_on_the_embedded_default_shows_dutch_and_english_mail_in_the_inbox(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = bare_env() | {"NOTIFIER_API_TOKENS": "t0ken", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port)], env, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve to answer")
        auth = {"Authorization": "Bearer t0ken"}
        for locale in ("nl", "en"):
            body = event("order.placed", id=f"evt-{locale}", locale=locale)
            body["customer"]["id"] = f"C-{locale}"
            assert httpx.post(f"{base}/v1/events", json=body, headers=auth).status_code == 202

        def two_mails() -> bool:
            return httpx.get(f"{base}/dev/inbox").text.count('href="/dev/inbox/') == 2

        wait_until(two_mails, 30, "both mails in the development inbox")
        inbox = httpx.get(f"{base}/dev/inbox").text
        assert "Bedankt voor je bestelling" in inbox
        assert "Thank you for your order" in inbox or "Thanks for your order" in inbox
        first = inbox.split('href="/dev/inbox/', 1)[1].split('"', 1)[0]
        page = httpx.get(f"{base}/dev/inbox/{first}")
        assert page.status_code == 200 and "Content-Language" in page.text
        html = httpx.get(f"{base}/dev/inbox/{first}/html")
        assert html.status_code == 200
        # No NOTIFIER_BASE_URL: the mail's links lead to the port serve was given.
        assert f'href="{base}/preferences/' in html.text
        # uvicorn's "auto" found the C event loop and HTTP parser the dependencies bring.
        loaded = Path(f"/proc/{server.pid}/maps").read_text()
        assert "uvloop" in loaded and "httptools" in loaded
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = log.read_text()
    assert "DEVELOPMENT MODE" in output
    assert (tmp_path / "notifier.db").exists() and (tmp_path / "notifier.keys").exists()
    assert "jan@example.nl" not in output  # logs never name a customer


def test_db_upgrade_and_status(tmp_path: Path) -> None:
    env = notifier_env(database_url=f"sqlite:///{tmp_path / 'n.db'}")
    upgraded = run(["db", "upgrade"], tmp_path, env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "up to date" in upgraded.stdout
    status = run(["status"], tmp_path, env)
    assert status.returncode == 0 and "the outbox is empty" in status.stdout


def test_a_bad_setting_is_named_without_a_traceback(tmp_path: Path) -> None:
    env = notifier_env(send_window="20:00-09:00")
    result = run(["status"], tmp_path, env)
    assert result.returncode == 1
    assert "NOTIFIER_SEND_WINDOW" in result.stderr and "Traceback" not in result.stderr


def test_the_links_follow_host_and_port_unless_the_base_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFIER_BASE_URL", raising=False)
    config = settings.load()
    assert cli._served_at(config, "127.0.0.1", 9000).base_url == "http://127.0.0.1:9000"
    assert cli._served_at(config, "0.0.0.0", 9001).base_url == "http://127.0.0.1:9001"
    assert cli._served_at(config, "::1", 9002).base_url == "http://[::1]:9002"
    assert cli._served_at(config, "mail.test", 80).base_url == "http://mail.test:80"
    chosen = settings.load(base_url="https://mail.shop.example")
    assert cli._served_at(chosen, "0.0.0.0", 9003).base_url == "https://mail.shop.example"


def refused(args: list[str], tmp_path: Path, env: dict[str, str]) -> str:
    """Run a command that must refuse to start: exit status 2, one line on stderr, nothing made."""
    result = subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "notifier.db").exists()
    return result.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_template_that_does_not_compile_stops_the_start_naming_file_and_line(
    tmp_path: Path, command: str
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(render.DEFAULT_TEMPLATES_DIR, templates)
    broken = templates / "partials" / "greeting.mjml.j2"
    broken.write_text("<mj-text>\n{{ customer.name }\n</mj-text>\n", encoding="utf-8")
    env = notifier_env(
        templates_dir=str(templates), database_url=f"sqlite:///{tmp_path / 'notifier.db'}"
    )
    args = [command, "--port", str(free_port())] if command == "serve" else [command]
    assert f"{broken}:2: " in refused(args, tmp_path, env)


def test_no_templates_at_all_stops_the_worker(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    env = notifier_env(
        templates_dir=str(empty), database_url=f"sqlite:///{tmp_path / 'notifier.db'}"
    )
    assert f"{empty}: no templates" in refused(["worker"], tmp_path, env)


@pytest.mark.slow
def test_serve_with_two_processes_shares_its_token_and_inbox_and_stops_them_all(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = bare_env() | {"PYTHONUNBUFFERED": "1"}
    server = start(["serve", "--port", str(port), "--workers", "2"], env, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ready(f"{base}/healthz"), 60, "notifier serve to answer")
        token = re.search(r"this run's API token is: (\S+)", log.read_text())
        assert token is not None
        auth = {"Authorization": f"Bearer {token[1]}"}
        for number in range(6):  # a new connection each: both processes take some
            body = event("order.placed", id=f"evt-{number}")
            body["customer"]["id"] = f"C{number}"
            assert httpx.post(f"{base}/v1/events", json=body, headers=auth).status_code == 202

        def six_mails() -> bool:
            return httpx.get(f"{base}/dev/inbox").text.count('href="/dev/inbox/') == 6

        wait_until(six_mails, 30, "six mails in the one development inbox")
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    finally:
        server.terminate()
        code = server.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert len(set(re.findall(r"Started server process \[(\d+)\]", output))) == 2
    assert "--workers on SQLite" in output
    assert children
    wait_until(
        lambda: not any(Path(f"/proc/{child}").exists() for child in children),
        10,
        "the worker processes to end with the server",
    )
