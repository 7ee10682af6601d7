"""Running ``notifier`` as a real subprocess, the way an operator does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import TEST_ENCRYPTION_KEY


def notifier_env(**settings: str) -> dict[str, str]:
    """The current environment without stray NOTIFIER_ settings, plus ``settings``."""
    env = bare_env() | {
        "NOTIFIER_SECRET_KEY": "test-secret-key",
        "NOTIFIER_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "PYTHONUNBUFFERED": "1",
        "NOTIFIER_RENDER_PROCESSES": "0",  # unless a test asks: spawning them costs seconds
    }
    env |= {f"NOTIFIER_{name.upper()}": value for name, value in settings.items()}
    return env


def start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "notifier", *args],
            env=env,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a real process's observable state; not a stand-in for a schedule."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def bare_env() -> dict[str, str]:
    """No NOTIFIER_ settings at all: the embedded default a newcomer gets."""
    return {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(args: list[str], tmp_path: Path, env: dict[str, str]) -> str:
    """Run a command that must refuse to start: exit status 2, one line on stderr, nothing made."""
    result = run(args, tmp_path, env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "notifier.db").exists()
    return result.stderr
