"""Links as the engine mails them, and the one-click POST a mailbox provider makes."""

from __future__ import annotations

from notifier.mail import tokens
from notifier.service import Notifier
from notifier.store import customers

ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


def preference_link(
    engine: Notifier, category: str, customer_id: str = "C42", locale: str = "nl"
) -> str:
    return engine.preference_tokens.issue(
        tokens.Claims(customer_id, category, locale, generation(engine, customer_id))
    )


def generation(engine: Notifier, customer_id: str = "C42") -> str:
    """The customer's token generation, which every link the engine mails names."""
    with engine.database.transaction() as session:
        return customers.token_generation(session, customer_id)[1]
