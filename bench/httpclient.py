"""A minimal asyncio HTTP/1.1 keep-alive client, cheap enough that the server is what is measured.

httpx costs about 3 ms of CPU per request here, so 16 httpx tasks on two
cores cap a benchmark near 300 requests/s whatever the server does. This
client does only what the enqueue benchmark needs: requests encoded ahead of
time, written as they are; the answer read as a status line, headers and a
``Content-Length`` body (what uvicorn sends for every JSON response). No
redirects, no chunked bodies, no TLS.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server's answer is not one this client reads (or the connection dropped mid-answer)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def encode_request(method: str, url: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One complete HTTP/1.1 request (``url`` absolute, for the Host header) as bytes."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection; one request at a time (no pipelining)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    def to(cls, url: str) -> Connection:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http://host:port URLs: {url}")
        return cls(parts.hostname, parts.port or 80)

    async def request(self, raw: bytes) -> Response:
        """Send one encoded request and read its answer; reconnects if the server had closed."""
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader = self._reader
        self._writer.write(raw)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.close()
            raise ProtocolError("connection closed before the answer") from exc
        status, length, close = _parse_head(head)
        try:
            body = await reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.close()
            raise ProtocolError("connection closed inside the body") from exc
        if close:
            self.close()
        return Response(status, body)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, whether the server closes) from a response head."""
    status_line, *header_lines = head[:-4].split(b"\r\n")
    version, _, rest = status_line.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not rest[:3].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    length: int | None = None
    close = version == b"HTTP/1.0"
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            raise ProtocolError("chunked answers are not supported")
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    if length is None:
        raise ProtocolError("answer without Content-Length")
    return int(rest[:3]), length, close
