"""The customer's say: preferences, unsubscribe links, newsletter consent, suppressions.

Used by the account-page API, the pages behind the links in every mail, and
the bounce/complaint feed. Every change is logged with its source; newsletter
consent is recorded as proof (when, how, from which IP, to which text).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from notifier import errors
from notifier.clock import Clock
from notifier.crypto import Sealer
from notifier.flows import consent, kinds
from notifier.mail import tokens
from notifier.schemas import SuppressionLifted, SuppressionOut
from notifier.store import customers, preferences, suppressions, webhooks
from notifier.store.db import Database, Session
from notifier.vocabulary import Category, SuppressionReason

log = logging.getLogger(__name__)
CATEGORIES = (*kinds.UNSUBSCRIBABLE, Category.SERVICE)

ONE_CLICK = "one_click"
PREFERENCES_PAGE = "preferences_page"
CONFIRM_LINK = "confirm_link"
ACCOUNT = "account"
API = "api"


@dataclass(frozen=True)
class LinkState:
    """What a page behind a mail link shows: whose link, in which language, which category."""

    claims: tokens.Claims
    states: dict[str, bool]


class Choices:
    """Reads and changes what each customer wants to receive."""

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        link_tokens: tokens.Signer,
        confirm_tokens: tokens.Signer,
        clock: Clock,
        consent_text_version: str,
        webhooks_on: bool = False,
    ) -> None:
        self._db = database
        self._sealer = sealer
        self._link_tokens = link_tokens
        self._confirm_tokens = confirm_tokens
        self._clock = clock
        self._text_version = consent_text_version
        self._webhooks_on = webhooks_on

    def states(self, customer_id: str) -> dict[str, bool]:
        """Every category's effective state; essential ones are always on."""
        with self._db.transaction() as session:
            _require_customer(session, customer_id)
            chosen = preferences.choices(session, customer_id)
        return {
            category: consent.is_enabled(category, chosen.get(category)) for category in CATEGORIES
        }

    def update(
        self,
        customer_id: str,
        changes: Mapping[str, bool],
        *,
        source: str,
        ip: str | None = None,
        text_version: str | None = None,
    ) -> dict[str, bool]:
        """Apply choices; turning the newsletter on records consent given through ``source``."""
        _check_categories(changes)
        now = self._clock.now()
        with self._db.transaction() as session:
            _require_customer(session, customer_id)
            chosen = preferences.choices(session, customer_id)
            for category, enabled in changes.items():
                if (
                    category == Category.SERVICE
                    or consent.is_enabled(category, chosen.get(category)) == enabled
                ):
                    continue
                changed = preferences.set_choice(
                    session, customer_id, category, enabled, source, now
                )
                if changed and enabled and category == Category.NEWSLETTER:
                    preferences.record_consent(
                        session,
                        self._sealer,
                        customer_id=customer_id,
                        category=category,
                        source=source,
                        ip=ip,
                        text_version=text_version or self._text_version,
                        now=now,
                    )
                if changed and not enabled and self._webhooks_on:
                    webhooks.add(
                        session,
                        "customer.unsubscribed",
                        f"{customer_id}\0{category}\0{now.isoformat()}",
                        {
                            "message_id": None,
                            "customer_id": customer_id,
                            "kind": None,
                            "category": category,
                            "source": source,
                        },
                        now,
                    )
                if changed:
                    log.info(
                        "preferences.changed category=%s enabled=%s source=%s",
                        category,
                        enabled,
                        source,
                    )
        return self.states(customer_id)

    def read_link(self, token: str) -> LinkState:
        """The state behind a preferences/unsubscribe link; ``BadToken`` for a bad link."""
        claims = self._claims(self._link_tokens, token)
        try:
            return LinkState(claims, self.states(claims.customer_id))
        except errors.NotFound as exc:
            raise errors.BadToken("this link belongs to no one (any more)") from exc

    def unsubscribe(self, token: str, source: str = ONE_CLICK) -> LinkState:
        """Turn off the link's category at once; idempotent. Essential mail cannot be turned off."""
        claims = self._claims(self._link_tokens, token)
        if claims.category not in kinds.UNSUBSCRIBABLE:
            raise errors.Conflict("this mail is essential and has no unsubscribe")
        self._update_from_link(claims, {claims.category: False}, source, None)
        return self.read_link(token)

    def update_from_link(
        self, token: str, changes: Mapping[str, bool], ip: str | None
    ) -> tuple[LinkState, dict[str, bool]]:
        """Apply choices made on the preferences page; returns the new and the old (undo) state."""
        claims = self._claims(self._link_tokens, token)
        before = self.read_link(token).states
        self._update_from_link(claims, changes, PREFERENCES_PAGE, ip)
        return self.read_link(token), before

    def confirm_link(self, token: str) -> tokens.Claims:
        """The claims of a double opt-in link; ``BadToken`` for a bad one."""
        return self._claims(self._confirm_tokens, token)

    def _claims(self, signer: tokens.Signer, token: str) -> tokens.Claims:
        """The claims of a link issued to the customer as they are now; ``BadToken`` else.

        A customer erased and created again under the same id has a new
        token generation, so the links mailed to the person before are refused.
        """
        claims = signer.read(token)
        with self._db.transaction() as session:
            known, generation = customers.token_generation(session, claims.customer_id)
        if not known:
            raise errors.BadToken("this link belongs to no one (any more)")
        tokens.check_generation(claims, generation)
        return claims

    def confirm_newsletter(self, token: str, ip: str | None) -> tokens.Claims:
        """Double opt-in: the confirm link turns the newsletter on and records the consent."""
        claims = self.confirm_link(token)
        self.update(claims.customer_id, {Category.NEWSLETTER: True}, source=CONFIRM_LINK, ip=ip)
        return claims

    def preferences_link(self, claims: tokens.Claims) -> str:
        """A preferences-page token for the customer of a confirm link: the way on after confirming.

        The confirm link reached the same mailbox as every mail's preferences
        link, so it may open that page too.
        """
        return self._link_tokens.issue(
            tokens.Claims(claims.customer_id, Category.NEWSLETTER, claims.locale, claims.generation)
        )

    def suppress(self, email: str, reason: str, detail: str | None = None) -> None:
        """Suppress an address; a complaint also unsubscribes it from every category."""
        if reason not in set(SuppressionReason):
            raise errors.InvalidInput(f"one of {', '.join(SuppressionReason)}", "reason")
        now = self._clock.now()
        index = self._sealer.blind_index(email)
        with self._db.transaction() as session:
            suppressions.add(session, self._sealer, index, reason, detail, now)
            if reason == SuppressionReason.COMPLAINT:
                for customer_id in suppressions.customers_with(session, index):
                    for category in kinds.UNSUBSCRIBABLE:
                        preferences.set_choice(
                            session, customer_id, category, False, "complaint", now
                        )
        log.info("suppression.added reason=%s", reason)

    def suppression(self, email: str) -> SuppressionOut:
        """The address's suppression, found by keyed hash; ``NotFound`` if it has none."""
        with self._db.transaction() as session:
            row = suppressions.get(session, self._sealer.blind_index(email))
            if row is None:
                raise errors.NotFound("this address is not suppressed")
            detail = suppressions.detail(self._sealer, row)
            return SuppressionOut(reason=row.reason, detail=detail, since=row.created_at)

    def lift_suppression(self, email: str, reason: str) -> SuppressionLifted:
        """Let mail reach the address again; ``reason`` is kept with the lift (the audit trail).

        Preferences a complaint turned off stay off: they are the customer's
        to turn on again.
        """
        if not reason.strip():
            raise errors.InvalidInput("say why the suppression is lifted", "reason")
        with self._db.transaction() as session:
            previous = suppressions.lift(
                session, self._sealer.blind_index(email), reason.strip()[:500], self._clock.now()
            )
        if previous is None:
            raise errors.NotFound("this address is not suppressed")
        log.info("suppression.lifted previous_reason=%s", previous)
        return SuppressionLifted(previous_reason=previous, reason=reason.strip()[:500])

    def _update_from_link(
        self, claims: tokens.Claims, changes: Mapping[str, bool], source: str, ip: str | None
    ) -> None:
        try:
            self.update(claims.customer_id, changes, source=source, ip=ip)
        except errors.NotFound as exc:
            raise errors.BadToken("this link belongs to no one (any more)") from exc


def _require_customer(session: Session, customer_id: str) -> None:
    if not customers.exists(session, customer_id):
        raise errors.NotFound(f"no customer {customer_id!r}")


def _check_categories(changes: Mapping[str, bool]) -> None:
    for category, enabled in changes.items():
        if category not in CATEGORIES:
            raise errors.InvalidInput(
                f"unknown category; expected one of {', '.join(CATEGORIES)}", category
            )
        if category == Category.SERVICE and not enabled:
            raise errors.InvalidInput("service mail is essential and always on", category)
