"""Who may be mailed, as a table: ``flows.consent.blocked`` for every category, choice and
suppression, and every kind judged by its category.

The table is the specification. A hard bounce stops everything; any other
suppression stops all but service mail; a category the customer turned off
(or never turned on: the newsletter is opt-in) gets nothing; service mail
cannot be turned off.
"""

from __future__ import annotations

import pytest

from notifier.flows import consent, kinds
from notifier.vocabulary import Category, SuppressionReason

SUPPRESSIONS = (None, "hard_bounce", "complaint", "manual")
SEND, BOUNCED, SUPPRESSED, OFF = "send", "bounced", "suppressed", "off"

GRID = [
    # category       choice   no suppression  hard_bounce  complaint    manual
    ("order_updates", None,  (SEND,          BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("order_updates", True,  (SEND,          BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("order_updates", False, (OFF,           BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("reviews",       None,  (SEND,          BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("reviews",       True,  (SEND,          BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("reviews",       False, (OFF,           BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("newsletter",    None,  (OFF,           BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("newsletter",    True,  (SEND,          BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("newsletter",    False, (OFF,           BOUNCED,     SUPPRESSED,  SUPPRESSED)),
    ("service",       None,  (SEND,          BOUNCED,     SEND,        SEND)),
    ("service",       True,  (SEND,          BOUNCED,     SEND,        SEND)),
    ("service",       False, (SEND,          BOUNCED,     SEND,        SEND)),
]  # fmt: skip
"""The verdict for each category and choice (None: the customer made none), per suppression."""


def reason(verdict: str, category: str, suppression: str | None) -> str | None:
    """The reason ``blocked`` gives for a verdict of the grid; None for ``send``."""
    return {
        SEND: None,
        BOUNCED: "address suppressed: hard bounce",
        SUPPRESSED: f"address suppressed: {suppression}",
        OFF: f"unsubscribed from {category}",
    }[verdict]


CASES = [
    pytest.param(
        category,
        choice,
        suppression,
        reason(verdict, category, suppression),
        id=f"{category}-choice:{choice}-{suppression or 'not suppressed'}",
    )
    for category, choice, verdicts in GRID
    for suppression, verdict in zip(SUPPRESSIONS, verdicts, strict=True)
]


@pytest.mark.parametrize(("category", "choice", "suppression", "expected"), CASES)
def test_blocked(
    category: str, choice: bool | None, suppression: str | None, expected: str | None
) -> None:
    assert consent.blocked(category, choice, suppression) == expected


def test_the_grid_covers_every_category_choice_and_suppression_reason() -> None:
    categories = {*kinds.UNSUBSCRIBABLE, Category.SERVICE}
    every = {(category, choice) for category in categories for choice in (None, True, False)}
    assert len(GRID) == len(every) and {(c, choice) for c, choice, _ in GRID} == every
    assert set(SUPPRESSIONS) - {None} == {reason.value for reason in SuppressionReason}


KINDS = [
    # kind                   category         turned off  under a complaint
    ("order_confirmation",    "order_updates", OFF,        SUPPRESSED),
    ("shipping_notice",       "order_updates", OFF,        SUPPRESSED),
    ("verification_question", "service",       SEND,       SEND),
    ("review_products",       "reviews",       OFF,        SUPPRESSED),
    ("review_service",        "reviews",       OFF,        SUPPRESSED),
    ("newsletter",            "newsletter",    OFF,        SUPPRESSED),
    ("newsletter_confirm",    "service",       SEND,       SEND),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "category", "turned_off", "complaint"), KINDS)
def test_each_kind_is_judged_by_its_category(
    kind: str, category: str, turned_off: str, complaint: str
) -> None:
    assert kinds.get(kind).category == category
    assert consent.blocked(category, False, None) == reason(turned_off, category, None)
    assert consent.blocked(category, True, "complaint") == reason(complaint, category, "complaint")
    assert consent.blocked(category, True, "hard_bounce") == reason(BOUNCED, category, None)


def test_the_kind_table_lists_every_kind() -> None:
    """A new kind needs a row here: whether its mail can be turned off is a decision."""
    assert {kind for kind, *_ in KINDS} == set(kinds.KINDS)
