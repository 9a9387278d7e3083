"""The widget on other sites: one script tag embeds it; only the configured sites may show it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

from chatsvc.config import Config, WebConfig
from tests.browser.conftest import OpenPage, PageErrors, WebDesk
from tests.support.waiting import eventually

HOST_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Another hospital</title><link rel="icon" href="data:,"></head><body><h1>Another hospital</h1>
<script src="{gateway}/widget.js" async></script></body></html>"""
# Where the host site's page loads the widget from, set once the gateway is up.
GATEWAY = web.AppKey("gateway", dict)


async def host_site(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> TestServer:
    """Another origin (another port) whose page embeds the gateway's widget."""

    async def page(request: web.Request) -> web.Response:
        origin = request.app[GATEWAY]["origin"]
        return web.Response(text=HOST_PAGE.format(gateway=origin), content_type="text/html")

    app = web.Application()
    app[GATEWAY] = {"origin": ""}
    app.router.add_get("/", page)
    return await aiohttp_server(app)


def origin_of(url: str) -> str:
    return url.rstrip("/")


async def site_and_desk(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    make_web_desk: Callable[..., Awaitable[WebDesk]],
    allow_the_site: bool,
) -> tuple[TestServer, WebDesk]:
    site = await host_site(aiohttp_server)
    allowed = origin_of(str(site.make_url("/"))) if allow_the_site else "https://other.example"
    desk = await make_web_desk(Config(web=WebConfig(embed_origins=(allowed,))))
    site.app[GATEWAY]["origin"] = origin_of(desk.url("/"))
    return site, desk


async def open_the_widget(open_page: OpenPage, url: str):  # type: ignore[no-untyped-def]
    page = await open_page(url)
    await page.get_by_role("button", name="Talk to a doctor").click()
    handle = await page.locator("iframe[data-chatsvc=frame]").element_handle()
    frame = await handle.content_frame()
    assert frame is not None
    return page, frame


async def test_an_allowed_site_shows_the_widget_panel(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    make_web_desk: Callable[..., Awaitable[WebDesk]],
    open_page: OpenPage,
) -> None:
    site, desk = await site_and_desk(aiohttp_server, make_web_desk, allow_the_site=True)
    _, frame = await open_the_widget(open_page, str(site.make_url("/")))
    await frame.locator("#app").wait_for(state="attached")
    assert frame.url.startswith(desk.url("/widget"))


async def test_a_site_not_allowed_cannot_show_the_widget_panel(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    make_web_desk: Callable[..., Awaitable[WebDesk]],
    open_page: OpenPage,
    page_errors: PageErrors,
) -> None:
    site, desk = await site_and_desk(aiohttp_server, make_web_desk, allow_the_site=False)
    page_errors.allowed.append("frame-ancestors")
    _, frame = await open_the_widget(open_page, str(site.make_url("/")))
    await eventually(lambda: any("frame-ancestors" in e for e in page_errors.errors))
    assert frame.url.startswith("chrome-error://")
    assert await frame.locator("#app").count() == 0


async def test_the_demo_page_of_the_gateway_itself_shows_the_widget(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    _, frame = await open_the_widget(open_page, web_desk.url("/demo"))
    await frame.locator("#app").wait_for(state="attached")
    assert frame.url.startswith(web_desk.url("/widget"))
