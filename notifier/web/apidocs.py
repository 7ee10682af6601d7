"""``/docs``: Swagger UI served by notifier itself, so it works offline and under the CSP.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline
script; the app's policy (``web.security``) forbids both, and a machine
without internet has no CDN. Here the assets come from the
``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads OpenAPI 3.1) and
the page starts it with ``static/docs.js``, so the policy needs only
``script-src 'self'`` and ``connect-src 'self'`` added, on this page alone.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from notifier.web import security

ASSETS = "/docs/assets"
POLICY = security.CONTENT_SECURITY_POLICY + "; script-src 'self'; connect-src 'self'"
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>notifier API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Add ``/docs`` and its assets to ``app``; both stay out of the OpenAPI document."""
    assets = Path(str(swagger_ui_bundle.swagger_ui_path))
    app.mount(ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"Content-Security-Policy": POLICY})
