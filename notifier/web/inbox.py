"""``/dev/inbox``: the captured mail of development mode, listed and shown, and failed mail.

A mail that failed for good never reaches the capture server, so the list
shows those beside it, each with its reason and how to send it again: the
developer who broke a template sees it where they look for the mail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from notifier.delivery.capture import Inbox
from notifier.service import FailedMessage

pages = Jinja2Templates(directory=Path(__file__).parent / "pages")
CHROME = {"lang": "en", "shop_name": "notifier"}
MAIL_HEADERS = {
    "Content-Security-Policy": "sandbox; script-src 'none'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
"""The mail's own HTML: sandboxed (no scripts, no same-origin access), and framed by the
inbox's page. Everything else keeps the app's ``DENY`` (``web.security``)."""


def router(inbox: Inbox, failed: Callable[[], list[FailedMessage]]) -> APIRouter:
    """The inbox's routes; ``failed`` lists the messages that failed for good."""
    routes = APIRouter(prefix="/dev/inbox", include_in_schema=False)

    @routes.get("", response_class=HTMLResponse)
    def inbox_list(request: Request) -> Response:
        shown = {"mails": inbox.list(), "failed": failed(), **CHROME}
        return pages.TemplateResponse(request, "inbox.html", shown)

    @routes.get("/{mail_id}", response_class=HTMLResponse)
    def inbox_mail(request: Request, mail_id: str) -> Response:
        mail = inbox.get(mail_id)
        if mail is None:
            raise HTTPException(404, "no such mail")
        return pages.TemplateResponse(request, "inbox_mail.html", {"mail": mail, **CHROME})

    @routes.get("/{mail_id}/html", response_class=HTMLResponse)
    def inbox_mail_html(mail_id: str) -> Response:
        mail = inbox.get(mail_id)
        html = mail.part("html") if mail else None
        if html is None:
            raise HTTPException(404, "no such mail")
        return HTMLResponse(html, headers=MAIL_HEADERS)

    return routes
