"""The patient widget: from the not-for-emergencies notice to an ended consultation, against a
real gateway, with a doctor on the other side speaking the protocol through chatsvc.client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import expect

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.config import AuthConfig, Config, WebConfig
from chatsvc.protocol import frames as f
from tests.browser.conftest import DESKTOP, PHONE, OpenPage, PageErrors, WebDesk, screenshot
from tests.browser.patient_steps import (
    SocketSwitch,
    Widget,
    bubbles,
    choose_department,
    connect_doctor,
    fail_on_dialog,
    fill_intake,
    host_page_app,
    join_queue,
    no_horizontal_overflow,
    open_panel,
    pass_notice,
    send_as_patient,
    start_chat,
    tab,
)
from tests.conftest import TEST_SECRET

DoctorFactory = Callable[..., Awaitable[ChatClient]]
SUMMARY = "Viral pharyngitis: rest, fluids, paracetamol if needed."
ATTACK = "<img src=x onerror=alert(1)>"


@pytest.fixture
async def make_doctor(web_desk: WebDesk) -> AsyncIterator[DoctorFactory]:
    doctors: list[ChatClient] = []

    async def make(user: str = "d1", name: str = "Dr Wang") -> ChatClient:
        doctor = await connect_doctor(web_desk, user, name)
        doctors.append(doctor)
        return doctor

    yield make
    for doctor in doctors:
        await doctor.close()


async def test_a_patient_joins_chats_and_downloads_the_transcript_of_the_ended_consultation(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    page = await open_page(web_desk.url("/widget"))
    dialogs: list[str] = []
    fail_on_dialog(page, dialogs)

    await join_queue(page)
    await expect(page.locator("#waiting-position")).to_have_text("You are next")
    await expect(page.locator("#waiting-eta")).to_contain_text("Estimated wait")

    case = await doctor.take_next()
    await expect(page.locator("#chat-heading")).to_have_text("Dr Wang")
    await expect(page.locator("#chat-heading")).to_be_focused()

    await send_as_patient(page, "Hello doctor, my throat hurts")
    mine = page.locator("#chat-log li.mine").first
    await expect(mine.locator(".bubble")).to_have_text("Hello doctor, my throat hurts")
    await expect(mine.locator(".status")).to_have_text("Sent")
    await doctor.wait_for_messages(case.id, 1)

    await doctor.typing(case.id)
    await expect(page.locator("#chat-typing")).to_have_text("Dr Wang is typing…")
    await doctor.send(case.id, "How long has it hurt?")
    await expect(page.locator("#chat-log li.theirs .bubble")).to_have_text("How long has it hurt?")
    await expect(page.locator("#chat-typing")).to_be_hidden()
    # The page marks the doctor's message delivered, then read (it is visible and focused).
    delivered = await doctor.next(f.DeliveryReceipt, lambda r: r.consultation == case.id)
    assert delivered.role == "patient" and delivered.seq == 2
    read = await doctor.next(f.ReadReceipt, lambda r: r.consultation == case.id)
    assert read.role == "patient" and read.seq == 2

    await doctor.mark_delivered(case.id, 1)
    await expect(mine.locator(".status")).to_have_text("Delivered")
    await doctor.mark_read(case.id, 2)
    await expect(mine.locator(".status")).to_have_text("Read")

    await send_as_patient(page, "Three days")
    await doctor.wait_for_messages(case.id, 3)
    await expect(bubbles(page)).to_have_text(
        ["Hello doctor, my throat hurts", "How long has it hurt?", "Three days"]
    )

    await doctor.end(case.id, SUMMARY)
    await expect(page.locator("#end-heading")).to_be_focused()
    outcome = page.locator("#end-outcome")
    await expect(outcome).to_have_text("The doctor has ended the consultation.")
    await expect(page.locator("#end-summary")).to_have_text(SUMMARY)

    async with page.expect_download() as info:
        await page.get_by_role("button", name="Download transcript").click()
    download = await info.value
    assert download.suggested_filename == f"consultation-{case.id}.txt"
    text = Path(await download.path()).read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(": Hello doctor, my throat hurts")
    assert " doctor d1: How long has it hurt?" in lines[1]
    assert lines[2].endswith(": Three days")

    await page.get_by_role("button", name="Start a new consultation").click()
    await expect(page.locator("#notice-heading")).to_be_focused()
    assert dialogs == []


async def test_text_typed_by_either_side_shows_as_text_and_runs_nothing(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    page = await open_page(web_desk.url("/widget"))
    dialogs: list[str] = []
    fail_on_dialog(page, dialogs)
    case = await start_chat(page, doctor, symptoms=ATTACK)
    assert case.intake is not None and case.intake.symptoms == ATTACK

    await doctor.send(case.id, ATTACK)
    await send_as_patient(page, ATTACK + " (me)")
    await expect(bubbles(page)).to_have_text([ATTACK, ATTACK + " (me)"])
    await doctor.wait_for_messages(case.id, 2)
    assert await page.locator("img").count() == 0
    assert dialogs == []


async def test_the_whole_flow_works_by_keyboard_alone(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    page = await open_page(web_desk.url("/widget"))
    keys = page.keyboard
    await expect(page.locator("#notice-heading")).to_be_focused()

    # The notice: the emergency number first, then the two confirmations, then Continue.
    assert await tab(page) == "emergency-number"
    assert await tab(page) == "notice-ack"
    await keys.press("Space")
    assert await tab(page) == "notice-consent"
    await keys.press("Space")
    assert await tab(page) == "notice-continue"
    await keys.press("Enter")

    await expect(page.locator("#department-heading")).to_be_focused()
    assert await tab(page) == "department-general"
    await keys.press("Space")
    assert await tab(page) == "department-back"
    assert await tab(page) == "department-continue"
    await keys.press("Enter")

    await expect(page.locator("#intake-heading")).to_be_focused()
    assert await tab(page) == "intake-symptoms"
    await keys.type("Headache since yesterday")
    assert await tab(page) == "intake-age"
    await keys.press("ArrowDown")  # the first band after "Prefer not to say"
    assert await tab(page) == "intake-duration"
    await keys.press("ArrowDown")
    await keys.press("ArrowDown")
    assert await tab(page) == "intake-back"
    assert await tab(page) == "intake-submit"
    await keys.press("Enter")

    await expect(page.locator("#waiting-heading")).to_be_focused()
    case = await doctor.take_next()
    assert case.intake == f.IntakeForm(
        symptoms="Headache since yesterday", age_band="0-1", duration="days"
    )
    await expect(page.locator("#chat-heading")).to_be_focused()
    assert await tab(page) == "chat-end"
    assert await tab(page) == "chat-log"
    assert await tab(page) == "composer-text"
    await keys.type("Typed with the keyboard")
    await keys.press("Shift+Enter")
    await keys.type("on two lines")
    await keys.press("Enter")
    thread = await doctor.wait_for_messages(case.id, 1)
    assert thread.in_order()[0].text == "Typed with the keyboard\non two lines"
    await expect(page.locator("#chat-log li.mine .status")).to_have_text("Sent")


async def test_an_emergency_red_flag_shows_the_guidance_with_the_number_at_once(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    page = await open_page(web_desk.url("/widget"))
    await join_queue(page, symptoms="I have chest pain and feel faint")
    guidance = page.get_by_role("alert")
    await expect(guidance).to_contain_text("may need emergency care")
    await expect(guidance.locator("#guidance-number")).to_have_text("120")
    await expect(guidance.locator("#guidance-number")).to_have_attribute("href", "tel:120")
    # The patient may still wait: the queue shows under the guidance.
    await expect(page.locator("#waiting-position")).to_have_text("You are next")
    await expect(page.locator("#waiting-eta")).to_contain_text("No doctor is online right now")
    await screenshot(page, "patient-guidance-desktop")

    await page.get_by_role("button", name="Leave the queue").click()
    await page.get_by_role("button", name="Yes, leave").click()
    await expect(page.locator("#department-info")).to_have_text(
        "You have left the queue. You can join again whenever you like."
    )
    await expect(page.locator("#department-heading")).to_be_focused()
    # Who leaves unseen with an emergency flag is still told to call.
    await expect(guidance).to_contain_text("may need emergency care")


async def test_a_reload_mid_chat_restores_the_conversation_from_the_server(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    page = await open_page(web_desk.url("/widget"))
    case = await start_chat(page, doctor)
    await send_as_patient(page, "Before the reload")
    await doctor.wait_for_messages(case.id, 1)
    await doctor.send(case.id, "I see, go on")
    await expect(bubbles(page)).to_have_count(2)
    await doctor.mark_read(case.id, 2)
    await expect(page.locator("#chat-log li.mine .status")).to_have_text("Read")

    await page.reload()
    await expect(page.locator("#chat-heading")).to_have_text("Dr Wang")
    await expect(bubbles(page)).to_have_text(["Before the reload", "I see, go on"])
    await expect(page.locator("#chat-log li.mine .status")).to_have_text("Read")

    await send_as_patient(page, "After the reload")
    thread = await doctor.wait_for_messages(case.id, 3)
    assert [m.text for m in thread.in_order()][-1] == "After the reload"
    # The same guest: the desk restored the consultation, not a new patient.
    assert thread.in_order()[2].sender == thread.in_order()[0].sender


async def test_the_widget_speaks_simplified_chinese_when_asked_directly(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    page = await open_page(web_desk.url("/widget#lang=zh-CN"))
    await expect_chinese_flow(page)
    await screenshot(page, "patient-zh-waiting-desktop")


async def test_a_chinese_host_page_gets_the_widget_in_simplified_chinese(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    make_web_desk: Callable[..., Awaitable[WebDesk]],
    open_page: OpenPage,
) -> None:
    app, where = host_page_app("zh-CN", "某某医院")
    site = await aiohttp_server(app)
    site_origin = str(site.make_url("/")).rstrip("/")
    desk = await make_web_desk(Config(web=WebConfig(embed_origins=(site_origin,))))
    where["gateway"] = desk.url("/").rstrip("/")

    # The browser itself is English: the host page's <html lang> decides.
    page = await open_page(site_origin + "/", locale="en-GB")
    frame = await open_panel(page, "在线问诊")
    assert frame.url.startswith(desk.url("/widget#lang=zh-CN"))
    await expect_chinese_flow(frame)
    await screenshot(page, "patient-zh-host-page-desktop")


async def expect_chinese_flow(widget: Widget) -> None:
    """The notice (the server's text too), departments, intake and waiting, all in Chinese."""
    await expect(widget.locator("#notice-heading")).to_have_text("开始之前")
    await expect(widget.locator("#emergency-text")).to_have_text(
        "本服务不处理急症。如有生命危险或病情严重，请立即拨打 120。"
    )
    await expect(widget.locator("#notice-form")).to_contain_text("我了解本服务不处理急症")
    assert await widget.evaluate("document.documentElement.lang") == "zh-CN"
    await pass_notice(widget)
    await expect(widget.locator("#department-heading")).to_have_text("选择科室")
    await expect(widget.locator("label[for=department-general]")).to_contain_text("全科")
    await expect(widget.locator("#quote-general")).to_contain_text("您将是下一位")
    await choose_department(widget)
    await expect(widget.locator("label[for=intake-symptoms]")).to_have_text("您有哪些症状？")
    await fill_intake(widget, "胸痛，呼吸困难")
    await expect(widget.locator("#waiting-heading")).to_have_text("您正在排队")
    await expect(widget.locator("#waiting-position")).to_have_text("下一位就是您")
    await expect(widget.locator("#waiting-eta")).to_contain_text("目前没有医生在线")
    # The server's emergency guidance, in Chinese, for a red flag in Chinese.
    await expect(widget.get_by_role("alert")).to_contain_text("您描述的情况可能需要紧急救治")


async def test_every_screen_fits_a_phone_without_sideways_scrolling(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    page = await open_page(web_desk.url("/widget"), viewport=PHONE)

    async def fits(name: str) -> None:
        assert await no_horizontal_overflow(page), f"the {name} screen overflows sideways"
        await screenshot(page, f"patient-{name}-phone")

    await expect(page.locator("#notice-heading")).to_be_visible()
    await fits("notice")
    await pass_notice(page)
    await expect(page.locator("#quote-general")).to_contain_text("wait about")
    await fits("department")
    await choose_department(page)
    await page.locator("#intake-symptoms").fill("x" * 300)
    await fits("intake")
    await page.locator("#intake-submit").click()
    await expect(page.locator("#waiting-heading")).to_be_visible()
    await fits("waiting")

    case = await doctor.take_next()
    await expect(page.locator("#chat-heading")).to_be_visible()
    long_word = "Paracetamol" * 20  # one unbroken word wider than the screen
    await doctor.send(case.id, f"Please take this: {long_word}")
    await send_as_patient(page, "https://example.org/" + "a" * 200)
    await doctor.typing(case.id)
    await expect(bubbles(page)).to_have_count(2)
    await expect(page.locator("#chat-typing")).to_be_visible()
    await fits("chat")
    # The composer stays on screen: the log scrolls, not the page.
    box = await page.locator("#composer-text").bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"]

    await doctor.end(case.id, SUMMARY)
    await expect(page.locator("#end-summary")).to_have_text(SUMMARY)
    await fits("end")


async def test_the_demo_page_opens_the_panel_and_carries_a_consultation(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    page = await open_page(web_desk.url("/demo"), viewport=DESKTOP)
    frame = await open_panel(page, "Talk to a doctor")
    await expect(frame.locator("#emergency-text")).to_have_text(
        "This service is not for emergencies. If you are in danger or seriously unwell,"
        " call 120 now."
    )
    await screenshot(page, "patient-notice-desktop")
    await join_queue(frame)
    await screenshot(page, "patient-waiting-desktop")

    case = await doctor.take_next()
    await expect(frame.locator("#chat-heading")).to_have_text("Dr Wang")
    await send_as_patient(frame, "Hello, I have had a sore throat since Monday.")
    await doctor.wait_for_messages(case.id, 1)
    await doctor.mark_read(case.id, 1)
    await doctor.send(case.id, "Hello, I am Dr Wang. Do you have a fever?")
    await doctor.typing(case.id)
    await expect(frame.locator("#chat-log li.mine .status")).to_have_text("Read")
    await expect(frame.locator("#chat-typing")).to_be_visible()
    await screenshot(page, "patient-chat-desktop")

    await doctor.end(case.id, SUMMARY)
    await expect(frame.locator("#end-summary")).to_have_text(SUMMARY)
    async with page.expect_download() as info:
        await frame.get_by_role("button", name="Download transcript").click()
    text = Path(await (await info.value).path()).read_text(encoding="utf-8")
    assert "Do you have a fever?" in text
    await screenshot(page, "patient-end-desktop")


async def test_the_patient_is_told_of_a_transfer_back_to_the_queue_and_of_the_doctor_dropping(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    first = await make_doctor("d1", "Dr Wang")
    page = await open_page(web_desk.url("/widget"))
    case = await start_chat(page, first)
    await send_as_patient(page, "Is this the right department?")
    await first.wait_for_messages(case.id, 1)

    await first.transfer(case.id, department="general")
    await expect(page.locator("#waiting-heading")).to_be_focused()
    await expect(page.locator("#waiting-requeued")).to_contain_text("You are back in the queue")

    second = await make_doctor("d2", "Dr Li")
    await first.set_status("away")
    taken = await second.take_next()
    assert taken.id == case.id
    await expect(page.locator("#chat-heading")).to_have_text("Dr Li")
    await expect(bubbles(page)).to_have_text(["Is this the right department?"])

    await second.close()
    presence = page.locator("#chat-presence")
    await expect(presence).to_have_text(
        "Dr Li's connection dropped. They are reconnecting; please wait."
    )
    await second.reconnect()
    await expect(presence).to_have_text("Dr Li is back.")


async def test_messages_typed_while_the_connection_is_down_are_sent_when_it_is_back(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    # Every socket of the page goes through `link`, which can cut it and refuse new ones.
    page = await open_page("about:blank")
    link = SocketSwitch()
    await page.route_web_socket("**/ws", link.route)
    await page.goto(web_desk.url("/widget"))
    case = await start_chat(page, doctor)
    await expect(page.locator("#chat-heading")).to_have_text("Dr Wang")

    await link.cut()
    banner = page.locator("#connection-banner")
    await expect(banner).to_contain_text("Reconnecting")
    await send_as_patient(page, "Typed while offline")
    await expect(page.locator("#chat-log li.mine .status")).to_have_text("Sending…")
    await doctor.send(case.id, "Sent while you were away")

    link.restore()
    await expect(banner).to_be_hidden(timeout=30_000)
    await expect(page.locator("#chat-log li.mine .status")).to_have_text("Sent")
    thread = await doctor.wait_for_messages(case.id, 2)
    in_order = ["Sent while you were away", "Typed while offline"]
    assert [m.text for m in thread.in_order()] == in_order
    await expect(bubbles(page)).to_have_text(in_order)


async def test_too_many_new_sessions_from_one_address_are_explained(
    make_web_desk: Callable[..., Awaitable[WebDesk]],
    open_page: OpenPage,
    page_errors: PageErrors,
) -> None:
    desk = await make_web_desk(Config(auth=AuthConfig(guest_sessions_per_minute=1)))
    first = await open_page(desk.url("/widget"))
    await expect(first.locator("#notice-heading")).to_be_visible()

    page_errors.allowed.append("429")  # the browser logs the refused request
    second = await open_page(desk.url("/widget"))
    await expect(second.locator("#problem-heading")).to_be_focused()
    await expect(second.locator("#problem-text")).to_contain_text(
        "Too many consultations were started from your network in the last minute."
    )
    await expect(second.get_by_role("button", name="Try again")).to_be_visible()


async def test_a_stored_guest_token_near_its_expiry_is_renewed_for_the_same_patient(
    web_desk: WebDesk, open_page: OpenPage, make_doctor: DoctorFactory
) -> None:
    doctor = await make_doctor()
    page = await open_page(web_desk.url("/widget"))
    await expect(page.locator("#notice-heading")).to_be_visible()
    # A guest whose token has less left than the widget renews ahead of (100 s < 120 s).
    guest = "g-0123456789abcdef"
    old = tokens.issue(TEST_SECRET, tokens.Role.PATIENT, guest, time.time(), 100)
    stored = {"token": old, "user_id": guest, "expires_at": int(time.time()) + 100}
    await page.evaluate(
        "s => localStorage.setItem('chatsvc.patient.session', JSON.stringify(s))", stored
    )
    await page.reload()

    case = await start_chat(page, doctor)
    assert case.patient == guest
    kept = await page.evaluate("JSON.parse(localStorage.getItem('chatsvc.patient.session'))")
    assert kept["user_id"] == guest
    assert kept["token"] != old
    assert kept["expires_at"] > stored["expires_at"]
