"""What every benchmark shares: the machine line, timing, tables, ports, work folders.

Kept free of notifier imports so the sink and child-process entry points
start fast and measure only what they are asked to.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
WORK_DIR = Path(os.environ.get("NOTIFIER_BENCH_WORK_DIR") or BENCH_DIR / ".work")
"""Scratch space (git-ignored): databases, logs, the django-post_office venv."""

SECRET_KEY = "bench-secret-key-not-for-production"
ENCRYPTION_KEY = "hZ3s8x3nJ2tqk1k9Jr2m3o0Jb0sM7yYkE7JQbqkqS5U="
API_TOKEN = "bench-token"


def load() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages: other engineers share this machine."""
    return os.getloadavg()


def cpu_seconds(pid: int | str = "self") -> float:
    """User and system CPU seconds a process (every thread of it) has used so far."""
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


def spawned_children() -> list[int]:
    """This process's ``multiprocessing`` children (the engine's render processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):  # gone meanwhile
            continue
        if parent == os.getpid() and b"multiprocessing" in command:
            found.append(int(stat.parent.name))
    return found


def machine_line() -> str:
    one, five, fifteen = load()
    return (
        f"machine: nproc={os.cpu_count()} load={one:.2f}/{five:.2f}/{fifteen:.2f} "
        f"python={sys.version.split()[0]}"
    )


class LoadSampler:
    """Samples the 1-minute load every second while a benchmark runs.

    A figure taken while the load was 4 on two cores is not the figure of
    an idle machine; printing the mean and peak load beside it says so.
    """

    def __init__(self) -> None:
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LoadSampler:
        self._samples.append(load()[0])
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._samples.append(load()[0])

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self._samples.append(load()[0])

    def summary(self) -> str:
        mean, peak = statistics.fmean(self._samples), max(self._samples)
        return f"load during run: mean {mean:.2f}, peak {peak:.2f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: with few samples, interpolation would invent values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """Yields a function returning the seconds elapsed; frozen when the block ends."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def fresh_dir(name: str) -> Path:
    """An empty folder under ``bench/.work`` for one run's files."""
    path = WORK_DIR / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def notifier_env(**settings: str) -> dict[str, str]:
    """This environment without stray NOTIFIER_ variables, plus ``settings`` as NOTIFIER_*.

    A developer's own NOTIFIER_SMTP_HOST must not send benchmark mail
    anywhere real.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    env |= {
        "NOTIFIER_SECRET_KEY": SECRET_KEY,
        "NOTIFIER_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "NOTIFIER_API_TOKENS": API_TOKEN,
        "PYTHONUNBUFFERED": "1",
    }
    env |= {f"NOTIFIER_{name.upper()}": value for name, value in settings.items()}
    return env


@dataclass
class Row:
    figure: str
    value: str
    baseline: str = ""
    ratio: str = ""


@dataclass
class Table:
    """One benchmark's result: rows of figure, value, baseline, ratio, and notes under it."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, baseline: str = "", ratio: str = "") -> None:
        self.rows.append(Row(figure, value, baseline, ratio))

    def compare(
        self, figure: str, value: float, unit: str, baseline_name: str, baseline: float | None
    ) -> None:
        """A row whose ratio is value / baseline (above 1 means notifier's figure is larger)."""
        if baseline is None or baseline != baseline or baseline == 0:
            self.add(figure, f"{value:,.1f} {unit}", baseline_name or "-", "-")
            return
        self.add(
            figure,
            f"{value:,.1f} {unit}",
            f"{baseline_name} {baseline:,.1f} {unit}",
            f"{value / baseline:.2f}x",
        )

    def render(self) -> str:
        header = Row("figure", "value", "baseline (same run)", "ratio")
        rows = [header, *self.rows]
        widths = [
            max(len(getattr(row, name)) for row in rows)
            for name in ("figure", "value", "baseline", "ratio")
        ]

        def line(row: Row) -> str:
            cells = (row.figure, row.value, row.baseline, row.ratio)
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        out = [f"\n## {self.title}", line(header), rule, *(line(row) for row in self.rows)]
        out += [f"  - {note}" for note in self.notes]
        return "\n".join(out)
