"""The web pages: the patient widget, the doctor console, the supervisor dashboard and the demo.

Serves the files of `chatsvc/web/static` and nothing else: they are read once, when the app is
built, into a table keyed by their URL path, so no request can name a file outside it. Every
response carries a Content-Security-Policy that allows scripts, styles and connections from the
gateway's own origin only (no inline script, no CDN), and an ETag so browsers revalidate cheaply.

Who may frame what: the widget panel (`/widget`) may be framed by the gateway's own pages and by
`[web] embed_origins`; every other page by nobody. The host page of a hospital only loads
`/widget.js`, which adds a button and the iframe: the patient's token and health data live in the
iframe's origin, out of reach of the host page's scripts.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from chatsvc.web import STATIC_DIR

# Our own files: cached, but revalidated on every use (a 304 costs one round trip), so a new
# release is seen at once. Vendored libraries change only with a release of chatsvc and a new
# file name would be needed to bust a long cache, so they get a day.
OWN_CACHE_CONTROL = "public, no-cache"
VENDOR_CACHE_CONTROL = "public, max-age=86400"
PAGE_CACHE_CONTROL = "no-cache"

# Everything but scripts and styles from our origin, connections (HTTP and WebSocket) to it,
# images from it or made in the page (data:, blob:) is refused.
BASE_POLICY = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
)

# URL path → file under STATIC_DIR of the pages, and the frames each may show.
PAGES = {
    "/demo": ("demo.html", "frame-src 'self'"),
    "/widget": ("widget.html", ""),
    "/doctor": ("doctor.html", ""),
    "/supervisor": ("supervisor.html", ""),
}
# The script a host page includes to embed the widget.
LOADER_PATH = "/widget.js"
LOADER_FILE = "widget-loader.js"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    cache_control: str


def content_security_policy(frame_ancestors: str, extra: str = "") -> str:
    directives = [*BASE_POLICY, f"frame-ancestors {frame_ancestors}"]
    if extra:
        directives.append(extra)
    return "; ".join(directives)


def _content_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    if path.suffix in (".js", ".mjs"):
        return "text/javascript"
    return guessed or "application/octet-stream"


def _asset(path: Path, cache_control: str) -> Asset:
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Asset(body, _content_type(path), f'"{digest}"', cache_control)


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every file under `root` as `/static/<relative path>` (HTML pages are served by PAGES)."""
    assets: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix == ".html":
            continue
        relative = path.relative_to(root).as_posix()
        vendored = relative.startswith("vendor/")
        assets["/static/" + relative] = _asset(
            path, VENDOR_CACHE_CONTROL if vendored else OWN_CACHE_CONTROL
        )
    return assets


class Pages:
    """The handlers of the pages and their files, with their headers decided once."""

    def __init__(self, embed_origins: tuple[str, ...], root: Path = STATIC_DIR) -> None:
        self._assets = load_assets(root)
        self._assets[LOADER_PATH] = _asset(root / LOADER_FILE, OWN_CACHE_CONTROL)
        self._pages: dict[str, tuple[Asset, str]] = {}
        widget_ancestors = " ".join(("'self'", *embed_origins))
        for url, (name, extra) in PAGES.items():
            ancestors = widget_ancestors if url == "/widget" else "'none'"
            page = _asset(root / name, PAGE_CACHE_CONTROL)
            self._pages[url] = (page, content_security_policy(ancestors, extra))
        self._asset_policy = content_security_policy("'none'")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.home)
        for url in self._pages:
            router.add_get(url, self.page)
        router.add_get(LOADER_PATH, self.asset)
        router.add_get("/static/{path:.+}", self.asset)

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/demo")

    async def page(self, request: web.Request) -> web.StreamResponse:
        asset, policy = self._pages[request.path]
        return _respond(request, asset, policy)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        asset = self._assets.get(request.path)
        if asset is None:
            raise web.HTTPNotFound(
                text="no such file", headers=security_headers(self._asset_policy)
            )
        return _respond(request, asset, self._asset_policy)


def security_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        # Sign-in links carry the token in the fragment, which is never sent; no referrer at all
        # keeps even the page's path to ourselves.
        "Referrer-Policy": "no-referrer",
    }


def _respond(request: web.Request, asset: Asset, policy: str) -> web.Response:
    headers = {
        **security_headers(policy),
        "Cache-Control": asset.cache_control,
        "ETag": asset.etag,
    }
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    text = asset.content_type.startswith("text/") or asset.content_type == "application/json"
    return web.Response(
        body=asset.body,
        content_type=asset.content_type,
        charset="utf-8" if text else None,
        headers=headers,
    )
