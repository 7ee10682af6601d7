"""notifier as a real subprocess (``serve`` or ``worker``), as an operator runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import API_TOKEN, free_port, notifier_env


def start(args: list[str], env: dict[str, str], folder: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "notifier", *args],
            env=env,
            cwd=folder,  # an empty folder: no stray .env or notifier.toml is read
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM, as systemd would, and wait for the graceful stop; kill only if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def sink_env(database_url: str, smtp_port: int, **settings: Any) -> dict[str, str]:
    """The environment of a benchmarked process: this database, the sink, 8 connections,
    batches of 500, plus ``settings``."""
    return notifier_env(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=str(smtp_port),
        smtp_tls="none",
        smtp_connections="8",
        batch_size="500",
        **{key: str(value) for key, value in settings.items()},
    )


@contextmanager
def serving(
    folder: Path, database_url: str, smtp_port: int, *, workers: int = 1, **settings: Any
) -> Iterator[str]:
    """``notifier serve --workers N`` on a free port, sending to the sink; yields its base URL."""
    port = free_port()
    env = sink_env(database_url, smtp_port, base_url=f"http://127.0.0.1:{port}", **settings)
    log = folder / f"serve-{port}.log"
    process = start(["serve", "--port", str(port), "--workers", str(workers)], env, folder, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"notifier serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("notifier serve did not become ready in 60 s")
            time.sleep(0.1)
        yield url
    finally:
        stop(process)


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}
