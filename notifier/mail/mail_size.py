"""How big a mail's HTML may be: Gmail clips past about 102 KB and hides the footer.

The clipped part holds the unsubscribe link and the company details the law
asks for, so a campaign over ``LIMIT`` is refused at creation, and one past
``WARN_FROM`` is accepted with a warning. ``templates check`` applies the same
two numbers to the samples.
"""

from __future__ import annotations

import enum

LIMIT = 100 * 1024
WARN_FROM = 90 * 1024


class Verdict(enum.Enum):
    FINE = "fine"
    WARNING = "warning"
    REFUSED = "refused"


def judge(size: int) -> Verdict:
    if size > LIMIT:
        return Verdict.REFUSED
    if size >= WARN_FROM:
        return Verdict.WARNING
    return Verdict.FINE


def describe(size: int, locale: str) -> str:
    """The verdict in words, with the size and the limit (in KB, as a marketer reads them)."""
    over = "over" if size > LIMIT else "close to"
    return (
        f"the {locale} mail is {size / 1024:.1f} KB of HTML, {over} the limit of "
        f"{LIMIT // 1024} KB (Gmail clips a longer mail and hides the unsubscribe link)"
    )
