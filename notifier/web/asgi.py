"""Helpers for the pure-ASGI middlewares, which run on every request and so stay cheap."""

from __future__ import annotations

from starlette.types import Scope


def header(scope: Scope, name: bytes) -> bytes | None:
    """The request's ``name`` header (lower-case, as ASGI gives names), or None.

    The last one wins if it repeats, as ``dict(scope["headers"])`` would
    have it; a scan of the few raw pairs is cheaper than that dict.
    """
    found: bytes | None = None
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return found
