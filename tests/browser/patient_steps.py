"""Steps of the patient widget that its browser tests share: going through the screens, and a
doctor on the other side speaking the protocol through chatsvc.client."""

from __future__ import annotations

from aiohttp import web
from playwright.async_api import Dialog, Frame, Page, WebSocketRoute, expect

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.protocol import frames as f
from tests.browser.conftest import WebDesk, staff_token

# The widget is driven either as a page of its own (/widget) or as the iframe in a host page.
Widget = Page | Frame

NO_HORIZONTAL_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"


async def connect_doctor(desk: WebDesk, user: str = "d1", name: str = "Dr Wang") -> ChatClient:
    """A doctor on duty in "general", speaking the protocol through the Python client."""
    token = staff_token(tokens.Role.DOCTOR, user, name, departments=("general",))
    client = ChatClient(desk.url("/ws").replace("http://", "ws://", 1), token)
    await client.connect()
    await client.set_status("available")
    return client


def fail_on_dialog(page: Page, seen: list[str]) -> None:
    """Record any alert/confirm/prompt: a test asserts none opened (an injected script would)."""

    async def dismiss(dialog: Dialog) -> None:
        seen.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", dismiss)


async def pass_notice(widget: Widget) -> None:
    await expect(widget.locator("#notice-heading")).to_be_visible()
    await widget.locator("#notice-ack").check()
    await widget.locator("#notice-consent").check()
    await widget.locator("#notice-form button[type=submit]").click()


async def choose_department(widget: Widget, department: str = "general") -> None:
    await expect(widget.locator("#department-heading")).to_be_focused()
    await widget.locator(f"#department-{department}").check()
    await widget.locator("#department-form button[type=submit]").click()


async def fill_intake(
    widget: Widget, symptoms: str, age_band: str = "18-39", duration: str = "days"
) -> None:
    await expect(widget.locator("#intake-heading")).to_be_focused()
    await widget.locator("#intake-symptoms").fill(symptoms)
    await widget.locator("#intake-age").select_option(age_band)
    await widget.locator("#intake-duration").select_option(duration)
    await widget.locator("#intake-submit").click()


async def join_queue(widget: Widget, symptoms: str = "sore throat for three days") -> None:
    await pass_notice(widget)
    await choose_department(widget)
    await fill_intake(widget, symptoms)
    await expect(widget.locator("#waiting-heading")).to_be_focused()


async def send_as_patient(widget: Widget, text: str) -> None:
    box = widget.locator("#composer-text")
    await box.fill(text)
    await box.press("Enter")


def bubbles(widget: Widget, side: str = "") -> object:
    """The message bubbles in the log (side: "mine", "theirs" or both)."""
    return widget.locator(f"#chat-log li{'.' + side if side else ''} .bubble")


async def no_horizontal_overflow(widget: Widget) -> bool:
    return bool(await widget.evaluate(NO_HORIZONTAL_OVERFLOW))


async def tab(page: Page) -> str:
    """Press Tab; the id of what has the focus then (the keyboard's path through a screen)."""
    await page.keyboard.press("Tab")
    return str(await page.evaluate("document.activeElement ? document.activeElement.id : ''"))


HOST_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<title>Host</title><link rel="icon" href="data:,"></head><body><h1>{heading}</h1>
<script src="{gateway}/widget.js" async></script></body></html>"""


def host_page_app(lang: str, heading: str) -> tuple[web.Application, dict[str, str]]:
    """A hospital's page on another origin that embeds the widget; set where["gateway"] to the
    gateway's origin once it is up."""
    where = {"gateway": ""}

    async def page(request: web.Request) -> web.Response:
        body = HOST_PAGE.format(lang=lang, heading=heading, gateway=where["gateway"])
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    return app, where


async def open_panel(page: Page, launcher: str) -> Frame:
    """Press the loader's launcher button; the widget's frame once it has loaded."""
    await page.get_by_role("button", name=launcher).click()
    handle = await page.locator("iframe[data-chatsvc=frame]").element_handle()
    frame = await handle.content_frame()
    assert frame is not None
    return frame


class SocketSwitch:
    """Routes a page's WebSockets to the gateway, and can cut them to test a reconnect: after
    `cut()` every new socket is closed at once (the page keeps retrying) until `restore()`."""

    def __init__(self) -> None:
        self.blocked = False
        self.live: list[WebSocketRoute] = []

    async def route(self, socket: WebSocketRoute) -> None:
        if self.blocked:
            await socket.close(code=1012, reason="test: gateway away")
            return
        socket.connect_to_server()
        self.live.append(socket)

    async def cut(self) -> None:
        self.blocked = True
        for socket in self.live:
            await socket.close(code=1012, reason="test: gateway away")
        self.live.clear()

    def restore(self) -> None:
        self.blocked = False


async def start_chat(
    widget: Widget, doctor: ChatClient, symptoms: str = "sore throat for three days"
) -> f.ConsultationView:
    """Join the queue, have the doctor take the patient, and wait for the chat to show."""
    await join_queue(widget, symptoms)
    case = await doctor.take_next()
    await expect(widget.locator("#chat-heading")).to_be_focused()
    return case
