"""The pages behind the links in every mail: unsubscribe, preferences, newsletter confirmation.

GET never changes anything (mail scanners prefetch links); changes are POST
forms carrying a signed CSRF field. The one exception is RFC 8058 one-click:
a POST whose body is exactly ``List-Unsubscribe=One-Click``, as mailbox
providers send it, unsubscribes at once with no cookie, login or redirect.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from itsdangerous import BadData, TimestampSigner

from notifier import errors
from notifier.flows import kinds
from notifier.mail import i18n
from notifier.service import Notifier
from notifier.settings import Settings

log = logging.getLogger(__name__)
PAGES_DIR = Path(__file__).parent / "pages"
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
CSRF_LIFETIME = 24 * 3600
LINK_ERRORS = (errors.BadToken, errors.Conflict)
"""What a link's holder can cause; answered with a friendly page. Anything else is ours."""


class PageRenderer:
    """Server-rendered pages in the customer's language, translated through the shop's catalogs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._catalogs = i18n.Catalogs(settings.locales_dir)
        self._environments: dict[str, jinja2.Environment] = {}

    def locale_for(self, requested: str | None) -> str:
        return i18n.negotiate(requested, self._catalogs.available(), self._settings.default_locale)

    def render(self, name: str, locale: str, status: int = 200, **context: Any) -> HTMLResponse:
        template = self._environment(locale).get_template(name)
        html = template.render(
            lang=locale.split("_")[0],
            shop_name=self._settings.shop_name,
            shop_url=self._settings.shop_url,
            company=_company(self._settings),
            unsubscribable=kinds.UNSUBSCRIBABLE,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def gettext(self, locale: str) -> Callable[[str], str]:
        """The page catalog's translation function for ``locale``."""
        return self._catalogs.translations(locale).gettext

    def _environment(self, locale: str) -> jinja2.Environment:
        environment = self._environments.get(locale)
        if environment is None:
            environment = jinja2.Environment(
                loader=jinja2.FileSystemLoader(PAGES_DIR),
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
            )
            environment.install_gettext_translations(  # type: ignore[attr-defined]
                self._catalogs.translations(locale), newstyle=True
            )
            self._environments[locale] = environment
        return environment


def _company(settings: Settings) -> markupsafe.Markup:
    """The footer's legal lines: each item wraps as a whole, the KvK number on a line of its own.

    Run on, the line wrapped at 375 px to a dangling "· KvK 12345678". Each
    item is an inline-block (``.item`` in pages.css) that moves to the next
    line whole, and each separator ends the item before it, so no line
    starts with one.
    """
    return markupsafe.Markup(
        '<span class="item">{}&nbsp;·</span> <span class="item">{}</span><br>'
        '<span class="item">KvK\u00a0{}</span>'
    ).format(settings.company_name, settings.company_address, settings.company_kvk)


class Csrf:
    """A stateless CSRF field: a signature over the link token, valid for a day."""

    def __init__(self, secret: str) -> None:
        self._signer = TimestampSigner(secret, salt="notifier.csrf")

    def issue(self, token: str) -> str:
        return self._signer.sign(_digest(token)).decode()

    def valid(self, token: str, field: object) -> bool:
        if not isinstance(field, str):
            return False
        try:
            value = self._signer.unsign(field, max_age=CSRF_LIFETIME)
        except BadData:
            return False
        return value.decode() == _digest(token)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def router(engine: Notifier, secret: str) -> APIRouter:
    routes = APIRouter(include_in_schema=False)
    pages = PageRenderer(engine.settings)
    csrf = Csrf(secret)
    choices = engine.choices

    def problem(
        request: Request, exc: errors.BadToken | errors.Conflict | None, token: str | None = None
    ) -> HTMLResponse:
        """A friendly page for a bad link, an essential category, or (None) an expired form.

        ``token``: the link's, when it is good, for the way back to the preferences.
        """
        locale = pages.locale_for(_accept_language(request))
        gettext = pages.gettext(locale)
        if isinstance(exc, errors.BadToken):
            status, headline, explanation = (
                400,
                gettext("This link does not work (any more)"),
                gettext("The link may be incomplete or too old. Nothing has been changed."),
            )
        elif isinstance(exc, errors.Conflict):
            status, headline, explanation = (
                409,
                gettext("These emails cannot be turned off"),
                gettext("We need them to process your order."),
            )
        else:
            status, headline, explanation = (
                403,
                gettext("This form has expired"),
                gettext("Please open the link from the email again. Nothing has been changed."),
            )
        return pages.render(
            "problem.html", locale, status, headline=headline, explanation=explanation, token=token
        )

    def good(token: str) -> str | None:
        """``token`` if it opens the preferences page, for a problem page's way back there."""
        try:
            choices.read_link(token)
        except LINK_ERRORS:
            return None
        return token

    def page(name: str, locale: str, token: str, **context: Any) -> HTMLResponse:
        """A page about one link: its forms post back to it with a fresh CSRF field."""
        return pages.render(name, locale, token=token, csrf=csrf.issue(token), **context)

    @routes.get("/preferences/{token}", response_class=HTMLResponse)
    def preferences_page(request: Request, token: str) -> Response:
        try:
            state = choices.read_link(token)
        except LINK_ERRORS as exc:
            return problem(request, exc, good(token))
        return page(
            "preferences.html",
            state.claims.locale,
            token,
            states=state.states,
        )

    @routes.post("/preferences/{token}", response_class=HTMLResponse)
    async def preferences_save(request: Request, token: str) -> Response:
        form = await request.form()
        if not csrf.valid(token, form.get("csrf")):
            return problem(request, None, good(token))
        action = form.get("action", "save")
        wanted: dict[str, bool] = {
            category: form.get(category) == "on" and action != "all_off"
            for category in kinds.UNSUBSCRIBABLE
        }
        try:
            state, before = choices.update_from_link(token, wanted, _client_ip(request))
        except LINK_ERRORS as exc:
            return problem(request, exc, good(token))
        gettext = pages.gettext(state.claims.locale)
        headline = gettext("Your choices are saved")
        if action == "all_off":
            headline = gettext("You are unsubscribed from everything that can be turned off")
        elif action == "undo":
            headline = gettext("Undone: your previous choices are back")
        return page(
            "saved.html",
            state.claims.locale,
            token,
            states=state.states,
            headline=headline,
            undo=None if action == "undo" else before,
        )

    @routes.get("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe_page(request: Request, token: str) -> Response:
        try:
            state = choices.read_link(token)
        except LINK_ERRORS as exc:
            return problem(request, exc, good(token))
        category = state.claims.category
        if category not in kinds.UNSUBSCRIBABLE:
            return preferences_page(request, token)
        return page(
            "unsubscribe.html",
            state.claims.locale,
            token,
            states=state.states,
            category=category,
        )

    @routes.post("/unsubscribe/{token}")
    async def unsubscribe(request: Request, token: str) -> Response:
        body = await request.body()
        form = await request.form()
        if body.strip() == ONE_CLICK_BODY or form.get("List-Unsubscribe") == "One-Click":
            # RFC 8058: form-encoded or multipart, as the mailbox provider prefers.
            try:
                choices.unsubscribe(token)
            except LINK_ERRORS as exc:
                return problem(request, exc)
            return PlainTextResponse("Unsubscribed.\n")
        if not csrf.valid(token, form.get("csrf")):
            return problem(request, None, good(token))
        try:
            before = choices.read_link(token).states
            state = choices.unsubscribe(token, source="unsubscribe_page")
        except LINK_ERRORS as exc:
            return problem(request, exc, good(token))
        gettext = pages.gettext(state.claims.locale)
        return page(
            "saved.html",
            state.claims.locale,
            token,
            states=state.states,
            headline=gettext("You are unsubscribed"),
            undo=before,
        )

    @routes.get("/confirm/{token}", response_class=HTMLResponse)
    def confirm_page(request: Request, token: str) -> Response:
        try:
            claims = choices.confirm_link(token)
        except LINK_ERRORS as exc:
            return problem(request, exc, good(token))
        return page("confirm.html", claims.locale, token, confirmed=False)

    @routes.post("/confirm/{token}", response_class=HTMLResponse)
    async def confirm(request: Request, token: str) -> Response:
        form = await request.form()
        if not csrf.valid(token, form.get("csrf")):
            return problem(request, None, good(token))
        try:
            claims = choices.confirm_newsletter(token, _client_ip(request))
        except LINK_ERRORS as exc:
            return problem(request, exc, good(token))
        return pages.render(
            "confirm.html",
            claims.locale,
            token=choices.preferences_link(claims),
            confirmed=True,
        )

    return routes


def _accept_language(request: Request) -> str | None:
    header = request.headers.get("accept-language", "")
    first = header.split(",")[0].split(";")[0].strip()
    return first or None


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
