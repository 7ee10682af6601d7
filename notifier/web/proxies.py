"""The client address behind a reverse proxy: ``X-Forwarded-For`` believed from named proxies only.

The consent IP recorded from the pages and the pages' rate limit both key
on the client address. Behind nginx every connection comes from the
proxy, so the address must come from ``X-Forwarded-For`` — but a client
can send that header too, so it is believed only when the connection
comes from an address in ``NOTIFIER_TRUSTED_PROXIES`` (default: none, and
then the header is ignored altogether). uvicorn's own handling of the
header is off (``serve`` passes ``proxy_headers=False``): it trusts any
loopback peer.

The header's hops are read from the right, skipping those that are
trusted proxies themselves; the first hop that is not is the client. A hop
that is not an IP address ends the walk at the last address known good.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Sets the ASGI scope's ``client`` to the forwarded address when the peer is trusted."""

    def __init__(self, app: ASGIApp, networks: Iterable[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.networks and scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and self.trusted(peer[0]):
                hops = _forwarded(scope["headers"])
                if hops:
                    scope = {**scope, "client": (client_address(hops, peer[0], self), 0)}
        await self.app(scope, receive, send)

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def client_address(hops: Sequence[str], peer: str, proxies: TrustedProxies) -> str:
    """The client's address from ``hops`` (the header's, left to right) seen from ``peer``."""
    known = peer
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return known
        if not proxies.trusted(address):
            return address
        known = address
    return known


def _forwarded(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every ``X-Forwarded-For`` hop, in order, over all the header's lines."""
    hops: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            hops += (hop.strip() for hop in value.decode("latin-1").split(",") if hop.strip())
    return hops
