"""`/docs`: the interactive API page, Swagger UI served from the package.

FastAPI's own `/docs` loads Swagger UI from a CDN, so it is blank on a hub without Internet
access (a phone network often has none). The same page is served here with the assets in
`static/vendor/swagger-ui/` and no inline script, under the dashboard's CSP.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>callhook API</title>
<link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/apidocs.js"></script>
</body>
</html>
"""

# Swagger UI sets style attributes as it renders; scripts stay our own files only.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def docs_page(request: Request) -> HTMLResponse:
    """The API page; it reads `/openapi.json` from this hub."""
    return HTMLResponse(_PAGE, headers=_HEADERS)


def install(api: FastAPI) -> None:
    """Serve `/docs` (the app must be built with `docs_url=None`)."""
    api.add_api_route("/docs", docs_page, methods=["GET", "HEAD"], include_in_schema=False)
