"""The operator's feedback commands as real subprocesses: suppressions, bounces, webhooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from notifier import settings
from notifier.service import Notifier
from tests.processes import notifier_env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


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
