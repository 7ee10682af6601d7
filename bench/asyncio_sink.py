"""A minimal asyncio SMTP sink that notes when each probe message arrived.

Debian's smtp-sink is faster but cannot say *when* a given message was
accepted, which the latency benchmark needs. This sink answers every command
with success, throws the data away, and for recipients starting with a
prefix appends ``<monotonic seconds> <recipient> <others>`` to a log at the
moment the final ``.`` arrives, just before its 250 goes back; ``others`` is
how many messages without such a recipient it had accepted by then, so the
latency benchmark can tell how much of its backlog was still to come when
each probe arrived. It runs as its own process
(``python -m bench.asyncio_sink``) so its parsing never competes with the
benchmark's client for the GIL; ``time.monotonic`` is CLOCK_MONOTONIC, shared
by all processes on Linux, so arrival times compare with the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import IO

_END = b"\r\n.\r\n"


class _Session(asyncio.Protocol):
    """One SMTP session; pipelined commands are handled in order from one buffer."""

    def __init__(self, log: IO[str], prefix: str, counter: list[int], others: list[int]) -> None:
        self._log = log
        self._prefix = prefix
        self._counter = counter
        self._others = others
        self._buffer = bytearray()
        self._in_data = False
        self._recipients: list[str] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume one command or one message from the buffer; False when more input is needed."""
        assert self._transport is not None
        if self._in_data:
            end = self._buffer.find(_END)
            if end < 0:
                return False
            del self._buffer[: end + len(_END)]
            self._in_data = False
            self._arrived()
            self._transport.write(b"250 2.0.0 Ok: queued\r\n")
            return True
        newline = self._buffer.find(b"\r\n")
        if newline < 0:
            return False
        line = bytes(self._buffer[:newline])
        del self._buffer[: newline + 2]
        verb = line[:4].upper()
        if verb == b"EHLO":
            self._transport.write(
                b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE\r\n"
            )
        elif verb == b"RCPT":
            address = line.split(b":", 1)[-1].strip().strip(b"<>").split(b">", 1)[0]
            self._recipients.append(address.decode("utf-8", "replace"))
            self._transport.write(b"250 2.1.5 Ok\r\n")
        elif verb == b"DATA":
            self._in_data = True
            self._buffer[:0] = b"\r\n"  # so a message ending right away still matches CRLF.CRLF
            self._transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb == b"QUIT":
            self._transport.write(b"221 2.0.0 Bye\r\n")
            self._transport.close()
            return False
        else:  # HELO, MAIL, RSET, NOOP and anything else: accepted
            if verb in (b"MAIL", b"RSET"):
                self._recipients = []
            self._transport.write(b"250 2.0.0 Ok\r\n")
        return True

    def _arrived(self) -> None:
        now = time.monotonic()
        self._counter[0] += 1
        probes = [r for r in self._recipients if r.startswith(self._prefix)]
        if not probes:
            self._others[0] += 1
        for recipient in probes:
            self._log.write(f"{now:.6f} {recipient} {self._others[0]}\n")
            self._log.flush()
        self._recipients = []


async def serve(port: int, log_path: str, prefix: str) -> None:
    counter = [0]
    others = [0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with open(log_path, "a", encoding="utf-8") as log:
        server = await loop.create_server(
            lambda: _Session(log, prefix, counter, others), "127.0.0.1", port, backlog=256
        )
        async with server:
            await stop.wait()
        log.write(f"# received {counter[0]}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--prefix", default="probe")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.log, args.prefix))


if __name__ == "__main__":
    main()
