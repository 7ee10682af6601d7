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


def _bench(tmp_path: Path, *args: str) -> str:
    """``python -m bench args…`` in its own work folder; its stdout, once it exited 0."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=PROJECT_DIR,
        env=os.environ | {"NOTIFIER_BENCH_WORK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_small_benchmark_run_delivers_and_reports_everything(tmp_path: Path) -> None:
    out = _bench(
        tmp_path,
        "delivery", "fanout", "import", "latency", "--quick",
        "--n", "300", "--runs", "1", "--subscribers", "3000", "--rows", "300", "--probes", "5",
        "--backlog", "200", "--no-django",
    )  # fmt: skip
    assert "DB: sent 300, other none" in out
    assert "| notifier dispatch_due (render + send + record) " in out
    assert "aiosmtplib pre-built bytes" in out
    assert "| end to end: POST /v1/events from 16 clients → sent " in out
    assert "target: delivery ≥ 0.75x the bare client" in out
    assert "CPU per mail: the sending process (claim, open, SMTP client, record)" in out
    assert "CPU per mail: the render processes together" in out
    assert "target: end to end through POST ≥ 0.5x the bare client" in out
    assert "post_office baseline skipped (--no-django)" in out
    assert "## campaign fan-out" in out and "3,000" in out
    assert "advance() time, audience filter" in out and "queued 800 (raw: 800)" in out
    assert "## subscriber import" in out and "imported 300 of 300" in out
    assert "## latency" in out and "p99" in out


def test_the_issue_23_benches_print_figure_baseline_and_target(tmp_path: Path) -> None:
    out = _bench(
        tmp_path,
        "steps", "campaign", "latency",
        "--rounds", "1", "--subscribers", "300", "--runs", "1", "--probes", "3", "--backlog", "300",
    )  # fmt: skip
    assert "transactional (14 sample mails): Jinja (template → MJML)" in out
    assert "newsletter (200 readers, blank per locale): fill the campaign's blank" in out
    assert "% of the total" in out and "total of the steps" in out
    assert "render on the compiled path (a shape's HTML and text filled)" in out
    assert "| notifier campaign (advance + dispatch_due) " in out
    assert "aiosmtplib same bytes, 8 connections" in out and "sent 300 of 300" in out
    assert "target: campaign rate ≥ 0.9x the bare client" in out
    assert "target: 1M subscribers < 15 min" in out and "target < 300 MB" in out
    assert "target: p99 under delivery load" in out and "< 500 ms" in out
    assert "backlog the sink had yet to receive at each probe's arrival" in out
