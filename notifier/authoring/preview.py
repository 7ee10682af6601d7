"""``templates preview``: a local page with every template in every locale, live as files change.

A small Starlette app (an adapter, like ``web/``), served by uvicorn from
the CLI on localhost. Each kind is rendered in each locale with its sample data
by ``check.run`` — so the page shows exactly the problems ``templates
check`` reports, with file and line — and shown at desktop and mobile
width beside its plain-text part. The page polls a fingerprint of the
files' modification times and reloads itself when it changes; the server
then builds a fresh Renderer, since a Renderer keeps what it compiled.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from notifier.authoring import check
from notifier.flows import kinds

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'"
)
"""The page loads nothing from elsewhere and runs no inline script."""
MAIL_POLICY = "script-src 'none'; object-src 'none'; base-uri 'none'"
"""A previewed mail runs no script, as in a mail client."""
NO_STORE = {"Cache-Control": "no-store"}

pages = Jinja2Templates(directory=HERE / "pages")


def fingerprint(*folders: Path) -> str:
    """A short digest of the path, size and modification time of every file in ``folders``.

    Hidden files and editor backups (``.x.swp``, ``x~``) are left out so that
    typing in an editor does not reload the page before a save.
    """
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.name.startswith(".") or path.name.endswith("~") or not path.is_file():
                continue
            stat = path.stat()
            digest.update(
                f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()[:16]


class Workshop:
    """The templates and catalogs being edited, checked again whenever a file has changed."""

    def __init__(
        self, templates_dir: Path, locales_dir: Path, default_locale: str, timezone: str
    ) -> None:
        self.templates_dir = templates_dir
        self.locales_dir = locales_dir
        self.default_locale = default_locale
        self.timezone = timezone
        self._lock = threading.Lock()
        self._seen: tuple[str, check.Report] | None = None

    def fingerprint(self) -> str:
        return fingerprint(self.templates_dir, self.locales_dir)

    def report(self) -> tuple[str, check.Report]:
        """The current fingerprint and the check report for it, made anew after any change."""
        with self._lock:
            current = self.fingerprint()
            if self._seen is None or self._seen[0] != current:
                report = check.run(
                    self.templates_dir, self.locales_dir, self.default_locale, self.timezone
                )
                log.info(
                    "preview.checked fingerprint=%s problems=%d", current, len(report.problems)
                )
                self._seen = (current, report)
            return self._seen


def create_app(
    templates_dir: Path,
    locales_dir: Path,
    default_locale: str = "nl",
    timezone: str = "Europe/Amsterdam",
) -> Starlette:
    """The preview app for one templates folder and one locales folder."""
    workshop = Workshop(templates_dir, locales_dir, default_locale, timezone)

    def page(request: Request) -> Response:
        current, report = workshop.report()
        context = {
            "fingerprint": current,
            "report": report,
            "categories": {name: kind.category for name, kind in kinds.KINDS.items()},
            "base": Path.cwd(),
        }
        response = pages.TemplateResponse(request, "preview.html", context, headers=NO_STORE)
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    def mail(request: Request) -> Response:
        _, report = workshop.report()
        kind, locale = request.path_params["kind"], request.path_params["locale"]
        for rendition in report.renditions:
            if (rendition.kind, rendition.locale) == (kind, locale) and rendition.mail:
                headers = {"Content-Security-Policy": MAIL_POLICY, **NO_STORE}
                return HTMLResponse(rendition.mail.html, headers=headers)
        return HTMLResponse("<p>This mail did not render; see the preview page.</p>", 404)

    def current(request: Request) -> Response:
        return JSONResponse({"fingerprint": workshop.fingerprint()}, headers=NO_STORE)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/mail/{kind}/{locale}", mail),
            Route("/fingerprint", current),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
