"""Serving the document: ``/asyncapi.json`` and the HTML page ``/asyncapi``.

The page renders the document with the vendored ``@asyncapi/react-component`` standalone
bundle (``wsroute/static/asyncapi/``), served by the app itself, so it works offline and
makes no request to a CDN unless `asyncapi_cdn` asks for one. The document is embedded in
the page, so the page works even when the JSON route is turned off.

Both routes have the lowest priority: an HTTP route of the app at the same path wins, even
one added after ``install``.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from wsroute.asyncapi.document import asyncapi_document
from wsroute.router import WsRouter

BUNDLE_DIR = Path(__file__).parent.parent / "static" / "asyncapi"
"""The vendored ``@asyncapi/react-component`` files (``index.js``, ``default.min.css``, licenses)."""

BUNDLE_VERSION = "3.2.1"
"""The version of ``@asyncapi/react-component`` in `BUNDLE_DIR`."""

UNPKG = f"https://unpkg.com/@asyncapi/react-component@{BUNDLE_VERSION}"
"""A CDN base for ``install(app, asyncapi_cdn=UNPKG)``: the npm package's layout."""


@dataclasses.dataclass
class DocsOptions:
    """What ``install`` set up for the docs; kept on ``app.state.wsroute_docs``."""

    router: WsRouter
    json_url: str | None
    docs_url: str | None
    cdn: str | None
    multiplex_client: str | None
    _cache: dict[tuple[Any, ...], dict[str, Any]] = dataclasses.field(default_factory=dict)


def asyncapi_for_app(
    app: Starlette, *, host: str = "localhost:8000", protocol: str = "ws", pathname: str = ""
) -> dict[str, Any]:
    """The document of the `WsRouter` installed on `app`, titled after the app.

    Title, version and description come from the router when it has them
    (``WsRouter(title=…)``), else from the app: FastAPI's ``title``, ``version``, and its
    ``summary`` else its ``description`` (written for the HTTP API's ``/docs``, the latter
    often sends its reader to ``/asyncapi``: the page this document is shown on).
    """
    router = getattr(app.state, "wsroute", None)
    if not isinstance(router, WsRouter):
        raise LookupError("no WsRouter is installed on this app: call router.install(app)")
    options = getattr(app.state, "wsroute_docs", None)
    client = options.multiplex_client if isinstance(options, DocsOptions) else None
    # The client's URL, like every URL of the app, is under its mount point.
    client = pathname.rstrip("/") + client if client else None
    return asyncapi_document(
        router,
        title=router.title or getattr(app, "title", None),
        version=router.version or getattr(app, "version", None),
        description=(
            getattr(app, "summary", None) or getattr(app, "description", None)
            if router.description is None
            else router.description
        ),
        host=host,
        protocol=protocol,
        pathname=pathname,
        multiplex_client=client,
    )


def _request_document(request: Request, options: DocsOptions) -> dict[str, Any]:
    """The document as this client reaches the app: its Host, scheme and root path."""
    secure = request.url.scheme in ("https", "wss")
    host = request.headers.get("host") or request.url.netloc
    root = request.scope.get("root_path", "")
    # Handlers may be registered after install: their count is part of the key.
    key = (host, secure, root, len(options.router.table.handlers))
    document = options._cache.get(key)
    if document is None:
        if len(options._cache) > 32:  # the Host header is the client's: bound the cache
            options._cache.clear()
        document = asyncapi_for_app(request.app, host=host, protocol="wss" if secure else "ws", pathname=root)
        options._cache[key] = document
    return document


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}">
<style>
body {{ margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }}
/* The viewer's typography wraps inline code in backticks, as if Markdown were not rendered. */
.aui-root .prose code::before, .aui-root .prose code::after {{ content: none; }}
</style>
</head>
<body>
<div id="asyncapi"><noscript>This page needs JavaScript; the document is at {json_hint}.</noscript></div>
<script id="asyncapi-document" type="application/json">{document}</script>
<script src="{js}"></script>
<script>
AsyncApiStandalone.render({{
  schema: JSON.parse(document.getElementById("asyncapi-document").textContent),
  config: {{ show: {{ sidebar: true }} }},
}}, document.getElementById("asyncapi"));
</script>
</body>
</html>
"""


def _script_json(value: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``</script>``, ``<!--`` or ``&`` can appear."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(document: dict[str, Any], *, js: str, css: str, json_url: str | None) -> str:
    """The HTML page that renders `document` with the bundle at `js` and the styles at `css`."""
    title = f"{document['info']['title']} - AsyncAPI"
    return PAGE.format(
        title=html.escape(title),
        css=html.escape(css),
        js=html.escape(js),
        json_hint=html.escape(json_url) if json_url else "not served",
        document=_script_json(document),
    )


class _DocsRoute(Route):
    """A GET route that gives way to any HTTP route of the app matching the same path."""

    def __init__(self, path: str, endpoint: Any, app_router: Router) -> None:
        super().__init__(path, endpoint, methods=["GET"], include_in_schema=False)
        self.app_router = app_router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL:
            for route in self.app_router.routes:
                if (
                    isinstance(route, Route)
                    and not isinstance(route, _DocsRoute)
                    and route.matches(scope)[0] is Match.FULL
                ):
                    return Match.NONE, {}
        return match, child


def mount_docs(
    app: Starlette,
    router: WsRouter,
    *,
    json_url: str | None,
    docs_url: str | None,
    cdn: str | None,
    multiplex_client: str | None,
) -> None:
    """Append the JSON route, the page and its static files to `app` (``install`` calls it)."""
    options = DocsOptions(router, json_url, docs_url, cdn.rstrip("/") if cdn else None, multiplex_client)
    app.state.wsroute_docs = options
    routes = app.router.routes
    docs_base = docs_url.rstrip("/") if docs_url else ""

    async def asyncapi_json(request: Request) -> Response:
        return JSONResponse(_request_document(request, options))

    async def asyncapi_page(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        if options.cdn:
            js, css = f"{options.cdn}/browser/standalone/index.js", f"{options.cdn}/styles/default.min.css"
        else:
            static = f"{root}{docs_base}/static"
            # The version busts browser caches when the bundle is upgraded.
            js, css = f"{static}/index.js?v={BUNDLE_VERSION}", f"{static}/default.min.css?v={BUNDLE_VERSION}"
        page = render_page(
            _request_document(request, options), js=js, css=css, json_url=json_url and root + json_url
        )
        return HTMLResponse(page)

    if json_url is not None:
        routes.append(_DocsRoute(json_url, asyncapi_json, app.router))
    if docs_url is not None:
        routes.append(_DocsRoute(docs_base or "/", asyncapi_page, app.router))
        if cdn is None:
            routes.append(Mount(f"{docs_base}/static", app=StaticFiles(directory=BUNDLE_DIR)))
