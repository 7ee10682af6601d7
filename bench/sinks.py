"""The SMTP sinks the benchmarks deliver into, each in its own process.

Debian's ``smtp-sink`` (Postfix's test server, written in C) is the default:
it is fast enough that it is never what is measured. Where it is not
installed, or where arrival times are needed (latency), the small asyncio
sink in ``bench.asyncio_sink`` stands in; the output says which one ran.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import PROJECT_DIR, free_port, wait_for_port

SMTP_SINK = "/usr/sbin/smtp-sink"
_COUNTER = re.compile(rb"mesg=(\d+)")


@dataclass
class Sink:
    """A running sink: where it listens, what it is, and where its output goes."""

    name: str
    port: int
    output: Path
    process: subprocess.Popen[bytes]

    def received(self) -> int | None:
        """Messages the sink has accepted so far, when it reports that (smtp-sink ``-c``)."""
        if not self.name.startswith("smtp-sink"):
            return None
        counts = _COUNTER.findall(self.output.read_bytes())
        return int(counts[-1]) if counts else 0

    def arrivals(self) -> dict[str, float]:
        """recipient → monotonic arrival time, for the asyncio sink's recorded recipients."""
        return {recipient: when for recipient, (when, _) in self.probe_log().items()}

    def probe_log(self) -> dict[str, tuple[float, int]]:
        """recipient → (arrival time, other messages accepted before it), from the asyncio sink."""
        found: dict[str, tuple[float, int]] = {}
        for line in self.output.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                when, recipient, others = line.split(" ", 2)
                found.setdefault(recipient, (float(when), int(others)))
        return found


def debian_sink_available() -> bool:
    return os.access(SMTP_SINK, os.X_OK)


@contextmanager
def running_sink(folder: Path, *, want_arrivals: bool = False) -> Iterator[Sink]:
    """Start a sink for one benchmark and stop it (by its own pid) afterwards."""
    port = free_port()
    output = folder / f"sink-{port}.out"
    if debian_sink_available() and not want_arrivals:
        command = [SMTP_SINK]
        if os.geteuid() == 0:
            command += ["-u", getpass.getuser()]  # smtp-sink insists on -u when run as root
        command += ["-c", f"127.0.0.1:{port}", "256"]
        name = f"smtp-sink ({SMTP_SINK}, C, -c counters)"
    else:
        command = [sys.executable, "-m", "bench.asyncio_sink", "--port", str(port)]
        command += ["--log", str(output)]
        name = "asyncio sink (bench/asyncio_sink.py, own process, records arrival times)"
    with output.open("wb") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, cwd=PROJECT_DIR
        )
    try:
        wait_for_port(port)
        yield Sink(name, port, output, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def smtp_source_available() -> bool:
    return shutil.which("smtp-source") is not None or os.access("/usr/sbin/smtp-source", os.X_OK)
