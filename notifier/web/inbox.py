"""``/dev/inbox``: the captured mail of development mode, listed and shown."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from notifier.delivery.capture import Inbox

pages = Jinja2Templates(directory=Path(__file__).parent / "pages")
CHROME = {"lang": "en", "shop_name": "notifier"}
MAIL_HEADERS = {
    "Content-Security-Policy": "sandbox; script-src 'none'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}
"""The mail's own HTML: sandboxed (no scripts, no same-origin access), and framed by the
inbox's page. Everything else keeps the app's ``DENY`` (``web.security``)."""


def router(inbox: Inbox) -> APIRouter:
    routes = APIRouter(prefix="/dev/inbox", include_in_schema=False)

    @routes.get("", response_class=HTMLResponse)
    def inbox_list(request: Request) -> Response:
        return pages.TemplateResponse(request, "inbox.html", {"mails": inbox.list(), **CHROME})

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
