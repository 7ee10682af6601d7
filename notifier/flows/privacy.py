"""Keeping personal data out of what notifier stores in the clear and logs."""

from __future__ import annotations

import re

_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_LINK_TOKEN = re.compile(r"(/(?:unsubscribe|preferences|confirm)/)[^/?\s\"]+")


def redact_addresses(text: str) -> str:
    """``text`` with every email address replaced, e.g. in an SMTP server's reply."""
    return _ADDRESS.sub("<address>", text)


def redact_link_tokens(text: str) -> str:
    """``text`` with the signed token of every mail link replaced, e.g. in an access log line."""
    return _LINK_TOKEN.sub(r"\1<token>", text)
