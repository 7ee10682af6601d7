"""The operator's feedback commands as real subprocesses: suppressions, bounces, webhooks."""

from __future__ import annotations

import signal
import smtplib
from pathlib import Path

import pytest

from notifier import settings
from notifier.service import Notifier
from tests.processes import notifier_env, run, start, wait_until
from tests.smtpd import SmtpServer, free_port


def test_suppressions_show_and_lift_and_bounces_list(tmp_path: Path) -> None:
    env = notifier_env(database_url=f"sqlite:///{tmp_path / 'notifier.db'}")
    overrides = {
        key.removeprefix("NOTIFIER_").lower(): value
        for key, value in env.items()
        if key.startswith("NOTIFIER_")
    }
    engine = Notifier(settings.load(**overrides))
    try:
        engine.upgrade_database()
        engine.choices.suppress("jan@example.nl", "hard_bounce", "bounce 5.1.1")
    finally:
        engine.close()

    shown = run(["suppressions", "show", "jan@example.nl"], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert "hard_bounce" in shown.stdout
    assert run(["suppressions", "lift", "jan@example.nl"], tmp_path, env).returncode == 2
    lifted = run(["suppressions", "lift", "jan@example.nl", "--reason", "fixed"], tmp_path, env)
    assert lifted.returncode == 0 and "lifted the hard_bounce" in lifted.stdout
    gone = run(["suppressions", "show", "jan@example.nl"], tmp_path, env)
    assert gone.returncode == 1 and "not suppressed" in gone.stderr

    listed = run(["bounces", "list"], tmp_path, env)
    assert listed.returncode == 0 and "no reports received" in listed.stdout


@pytest.mark.slow
def test_worker_runs_the_bounce_listener(tmp_path: Path, smtp_server: SmtpServer) -> None:
    port = free_port()
    env = notifier_env(
        database_url=f"sqlite:///{tmp_path / 'notifier.db'}",
        smtp_host=smtp_server.host,
        smtp_port=str(smtp_server.port),
        smtp_tls="none",
        bounce_domain="bounces.winparts.example",
        bounce_smtp_port=str(port),
    )
    worker = start(["worker"], env, tmp_path, tmp_path / "worker.log")
    try:

        def listening() -> bool:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                    return client.noop()[0] == 250
            except OSError:
                return False

        wait_until(listening, 60, "the worker's bounce listener")
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.ehlo()
            client.mail("")
            code, _ = client.rcpt("postmaster@bounces.winparts.example")
        assert code == 550
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
