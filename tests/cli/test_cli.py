"""The operator's commands, run as real subprocesses: serve on the embedded default, db, status."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from notifier import settings
from notifier.cli.serve import served_at
from notifier.mail import render
from tests.conftest import event
from tests.processes import bare_env, http_ready, notifier_env, refused, run, start, wait_until
from tests.smtpd import free_port


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


ALL_COMMANDS = [
    ["serve", "--port", "1"],
    ["worker"],
    ["status"],
    ["db", "upgrade"],
    ["send-test", "order_confirmation", "--to", "test@example.com"],
]
NONSENSE = (
    "Error: NOTIFIER_DATABASE_URL: not a database URL; expected e.g. sqlite:///notifier.db "
    "or postgresql+psycopg://user@host/dbname"
)
NO_FOLDER = (
    "Error: NOTIFIER_DATABASE_URL: the folder /nonexistent/dir does not exist; create it first"
)


def unreachable() -> tuple[str, str]:
    """A PostgreSQL URL with nothing listening at its port, and the line that names it."""
    port = free_port()
    return (
        f"postgresql+psycopg://postgres:secret-pw@127.0.0.1:{port}/notifier",
        "Error: NOTIFIER_DATABASE_URL: cannot open the database: connection failed: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused',
    )


BAD_SETTINGS = [
    *[(command, {"database_url": "nonsense"}, NONSENSE) for command in ALL_COMMANDS],
    *[
        (command, {"database_url": "sqlite:////nonexistent/dir/x.db"}, NO_FOLDER)
        for command in ALL_COMMANDS
    ],
    *[(command, {"database_url": "unreachable"}, "unreachable") for command in ALL_COMMANDS[:4]],
    (
        ["status"],
        {"database_url": "mysql://shop:secret-pw@db/shop"},
        "Error: NOTIFIER_DATABASE_URL: notifier runs on sqlite or postgresql, not 'mysql'",
    ),
    (
        ["status"],
        {"send_window": "20:00-09:00"},
        "Error: NOTIFIER_SEND_WINDOW: the window must end after it starts: '20:00-09:00'",
    ),
]


@pytest.mark.parametrize(
    ("command", "settings", "expected"),
    BAD_SETTINGS,
    ids=[f"{' '.join(c[:2])}-{next(iter(s.values()))[:12]}" for c, s, _ in BAD_SETTINGS],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2(
    tmp_path: Path, command: list[str], settings: dict[str, str], expected: str
) -> None:
    if settings.get("database_url") == "unreachable":
        settings["database_url"], expected = unreachable()
    # send-test needs a relay before it gets to the database; nothing listens on it.
    env = notifier_env(smtp_host="127.0.0.1", smtp_port=str(free_port()), **settings)
    result = run(command, tmp_path, env)
    assert (result.returncode, result.stderr.strip()) == (2, expected), result.stderr
    assert "secret-pw" not in result.stderr
    assert not Path("/nonexistent").exists()


def test_an_unknown_variable_is_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    env = notifier_env(database_url=f"sqlite:///{tmp_path / 'n.db'}")
    assert run(["db", "upgrade"], tmp_path, env).returncode == 0
    result = run(["status"], tmp_path, env | {"NOTIFIER_SMPT_HOST": "relay", "NOTIFIER_XYZZY": ""})
    assert result.returncode == 0, result.stderr
    warnings = [line.split(" ", 4)[4] for line in result.stderr.splitlines()]
    assert warnings == [
        "settings.unknown_variable variable=NOTIFIER_SMPT_HOST closest=NOTIFIER_SMTP_HOST",
        "settings.unknown_variable variable=NOTIFIER_XYZZY",
    ]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_status_changes_nothing_on_disk(tmp_path: Path) -> None:
    env = bare_env()  # no keys set: a command that made its key file would do so here
    result = run(["status"], tmp_path, env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: no database yet: {tmp_path / 'notifier.db'} does not exist "
        "(`notifier db upgrade` or `notifier serve` creates it)"
    )
    assert list(tmp_path.iterdir()) == []
    assert run(["db", "upgrade"], tmp_path, env).returncode == 0
    before = snapshot(tmp_path)
    assert set(before) == {"notifier.db", "notifier.keys"}
    result = run(["status"], tmp_path, env)
    assert result.returncode == 0 and "the outbox is empty" in result.stdout, result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_each_sending_command_warns_once_of_plain_http_links_in_real_mail(
    tmp_path: Path, command: str
) -> None:
    port = free_port()
    env = notifier_env(
        database_url=f"sqlite:///{tmp_path / 'n.db'}",
        smtp_host="127.0.0.1",
        smtp_port=str(free_port()),
        smtp_tls="none",
        base_url="http://shop.example",
        api_tokens="t0ken",
    )
    log = tmp_path / f"{command}.log"
    if command == "serve":
        process = start(["serve", "--port", str(port)], env, tmp_path, log)
        started = http_ready(f"http://127.0.0.1:{port}/healthz")
    else:
        process = start(["worker"], env, tmp_path, log)
        started = lambda: "worker.started" in log.read_text()  # noqa: E731
    try:
        wait_until(started, 60, f"notifier {command} to start")
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log.read_text()
    assert (
        'settings.base_url_not_https variable=NOTIFIER_BASE_URL reason="one-click unsubscribe '
        '(RFC 8058) needs https links for real mail"' in output
    ), output[-3000:]
    assert output.count("settings.base_url_not_https") == 1, output[-3000:]


def test_the_links_follow_host_and_port_unless_the_base_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFIER_BASE_URL", raising=False)
    config = settings.load()
    assert served_at(config, "127.0.0.1", 9000).base_url == "http://127.0.0.1:9000"
    assert served_at(config, "0.0.0.0", 9001).base_url == "http://127.0.0.1:9001"
    assert served_at(config, "::1", 9002).base_url == "http://[::1]:9002"
    assert served_at(config, "mail.test", 80).base_url == "http://mail.test:80"
    chosen = settings.load(base_url="https://mail.shop.example")
    assert served_at(chosen, "0.0.0.0", 9003).base_url == "https://mail.shop.example"


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
        sent = 'notifier_deliveries_total{category="order_updates",outcome="sent"} 6.0'
        for _ in range(4):  # a new connection each: whichever process answers counts for both
            assert sent in httpx.get(f"{base}/metrics").text
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


def test_version_names_the_installed_distribution(tmp_path: Path) -> None:
    from importlib import metadata

    result = run(["--version"], tmp_path, bare_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"notifier {metadata.version('notifier')}"
