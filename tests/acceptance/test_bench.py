"""``make bench`` still runs: a small delivery, fan-out and latency run, each table checked.

The figures are not judged here (that is what the benchmarks are for); what
is checked is that every message was delivered and counted, and that each
table prints its figure beside its baseline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifier.settings import PROJECT_DIR

pytestmark = pytest.mark.slow


def test_a_small_benchmark_run_delivers_and_reports_everything(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "bench", "delivery", "fanout", "import", "latency", "--quick",
            "--n", "300", "--runs", "1", "--subscribers", "3000", "--rows", "300", "--probes", "5",
            "--backlog", "200", "--no-django",
        ],
        cwd=PROJECT_DIR,
        env=os.environ | {"NOTIFIER_BENCH_WORK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "DB: sent 300, other none" in out
    assert "| notifier dispatch_due (render + send + record) |" in out
    assert "aiosmtplib pre-built bytes" in out
    assert "post_office baseline skipped (--no-django)" in out
    assert "## campaign fan-out" in out and "3,000" in out
    assert "advance() time, audience filter" in out and "queued 800 (raw: 800)" in out
    assert "## subscriber import" in out and "imported 300 of 300" in out
    assert "## latency" in out and "p99" in out
