"""Browser tests: the pages served by a real gateway, driven in headless Chromium by Playwright.

Chromium is Debian's (`apt-get install chromium`, which `.ci/run` does); Playwright cannot
download its own browsers here, so it is launched through `executable_path`. Without Chromium
the tests are skipped, unless CHATSVC_REQUIRE_BROWSER=1 (CI) makes that a failure.

Every page opened through `open_page` fails its test if the page logs an error or throws, which
is how a Content-Security-Policy violation or a script error shows itself. Screenshots go to
`build/screenshots/` (or $CHATSVC_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.config import Config
from tests.conftest import TEST_SECRET, GatewayFactory

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("CHATSVC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without --disable-background-networking Chromium keeps trying hosts it cannot reach here.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 667}
ARTIFACTS = Path(os.environ.get("CHATSVC_ARTIFACTS") or Path(__file__).parents[2] / "build")
SCREENSHOTS = ARTIFACTS / "screenshots"
# Waits for something to show on a page: generous, because CI shares two cores.
SHOW_TIMEOUT_MS = 15_000
# Playwright's own default for `expect`, restored after each test.
PLAYWRIGHT_EXPECT_TIMEOUT_MS = 5_000


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.timeout(180))


@pytest.fixture
async def browser() -> AsyncIterator[playwright_api.Browser]:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CHATSVC_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        await launched.close()


@dataclass
class PageErrors:
    """What went wrong in the pages of one test: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)  # substrings a test expects to see

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


OpenPage = Callable[..., Awaitable[playwright_api.Page]]


@pytest.fixture
async def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
async def open_page(
    browser: playwright_api.Browser, page_errors: PageErrors
) -> AsyncIterator[OpenPage]:
    """Open a URL in a fresh browser context (its own storage: one user per context)."""
    contexts: list[playwright_api.BrowserContext] = []

    async def open_(
        url: str, viewport: dict[str, int] | None = None, locale: str = "en-GB"
    ) -> playwright_api.Page:
        context = await browser.new_context(viewport=viewport or DESKTOP, locale=locale)
        context.set_default_timeout(SHOW_TIMEOUT_MS)
        contexts.append(context)
        page = await context.new_page()
        page.on(
            "console",
            lambda message: (
                page_errors.errors.append(f"console: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: page_errors.errors.append(f"pageerror: {error}"))
        await page.goto(url)
        return page

    yield open_
    for context in contexts:
        await context.close()
    assert page_errors.unexpected() == [], "the pages logged errors"


async def screenshot(page: playwright_api.Page, name: str) -> Path:
    """Save a screenshot as a test artifact (build/screenshots/<name>.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


def staff_token(
    role: tokens.Role,
    user: str,
    name: str,
    departments: tuple[str, ...] = ("general", "paediatrics", "psych"),
    capacity: int = 3,
) -> str:
    return tokens.issue(
        TEST_SECRET,
        role,
        user,
        time.time(),
        3600,
        name=name,
        departments=departments,
        capacity=capacity,
    )


@dataclass
class WebDesk:
    """A gateway serving the pages, and sign-in links for its staff."""

    gateway: TestClient

    def url(self, path: str) -> str:
        return str(self.gateway.make_url(path))

    def doctor_link(self, user: str = "d1", name: str = "Dr Wang", **kwargs: object) -> str:
        token = staff_token(tokens.Role.DOCTOR, user, name, **kwargs)  # type: ignore[arg-type]
        return self.url("/doctor") + "#token=" + token

    def supervisor_link(self, user: str = "s1", name: str = "Head nurse Li") -> str:
        token = staff_token(tokens.Role.SUPERVISOR, user, name)
        return self.url("/supervisor") + "#token=" + token


@pytest.fixture(autouse=True)
def patient_expectations() -> Iterator[None]:
    """Pages update over a socket on two shared cores: `expect` waits as long as `open_page`."""
    playwright_api.expect.set_options(timeout=SHOW_TIMEOUT_MS)
    yield
    playwright_api.expect.set_options(timeout=PLAYWRIGHT_EXPECT_TIMEOUT_MS)


ClientFactory = Callable[[WebDesk, str], Awaitable[ChatClient]]


@pytest.fixture
async def protocol_clients() -> AsyncIterator[ClientFactory]:
    """The other people on a page's desk, as real protocol clients (closed at teardown):
    `await protocol_clients(desk, token)`."""
    opened: list[ChatClient] = []

    async def connect(desk: WebDesk, token: str) -> ChatClient:
        client = ChatClient(desk.url("/ws").replace("http://", "ws://", 1), token)
        opened.append(client)
        await client.connect()
        return client

    yield connect
    for client in opened:
        await client.close()


@pytest.fixture
async def make_web_desk(make_gateway: GatewayFactory) -> Callable[..., Awaitable[WebDesk]]:
    async def make(config: Config | None = None) -> WebDesk:
        return WebDesk(await make_gateway(config))

    return make


@pytest.fixture
async def web_desk(make_web_desk: Callable[..., Awaitable[WebDesk]]) -> WebDesk:
    return await make_web_desk()
