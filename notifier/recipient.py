"""Whom a message goes to: a customer's contact details, opened for use.

A plain value of the kernel, not of the store that opens it: every chunk a
render process is handed carries its recipients, and unpickling a class
from ``store`` would load SQLAlchemy and the models into that process
(about 30 MB each).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipient:
    """A customer's contact details, opened for use."""

    id: str
    email: str
    name: str | None
    locale: str
    email_index: str = ""
    first_name: str | None = None
    token_generation: str = field(default="", compare=False)
    """What the customer's link tokens name (``mail.tokens.Claims.generation``)."""
