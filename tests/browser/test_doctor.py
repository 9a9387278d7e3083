"""The doctor console (/doctor) in Chromium against a real gateway and Redis: patients are the
Python protocol client, the doctor is the page, signed in through a sign-in link."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Locator, Page, expect

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.config import Config, TriageConfig
from chatsvc.protocol import frames as f
from tests.browser.conftest import PHONE, ClientFactory, OpenPage, WebDesk, screenshot
from tests.e2e.conftest import token_for

XSS = "<img src=x onerror=alert(1)>"

Connect = Callable[..., Awaitable[ChatClient]]


@pytest.fixture
def connect(web_desk: WebDesk, protocol_clients: ClientFactory) -> Connect:
    """Patients (and a colleague doctor) speaking the protocol to the page's gateway."""

    async def connect_(
        user: str, role: tokens.Role = tokens.Role.PATIENT, **kwargs: object
    ) -> ChatClient:
        return await protocol_clients(web_desk, token_for(role, user, **kwargs))  # type: ignore[arg-type]

    return connect_


async def sign_in(
    open_page: OpenPage, web_desk: WebDesk, viewport: dict[str, int] | None = None, **link: object
) -> Page:
    """Open the console from a sign-in link and go available."""
    page = await open_page(web_desk.doctor_link(**link), viewport=viewport)  # type: ignore[arg-type]
    await expect(page.locator("#doctor-name")).to_have_text(str(link.get("name", "Dr Wang")))
    available = page.get_by_label("Available")
    await available.check()
    await expect(available).to_be_checked()
    return page


def waiting(page: Page, department: str) -> Locator:
    return page.locator(f'[data-department="{department}"] [data-field="waiting"]')


def panel(page: Page, consultation: str) -> Locator:
    return page.locator(f'.case[data-consultation="{consultation}"]')


def tab(page: Page, consultation: str) -> Locator:
    return page.locator(f'[role=tab][data-consultation="{consultation}"]')


async def take_patient(page: Page, patient: ChatClient) -> str:
    """The page takes the next patient; returns the consultation id the patient was told."""
    await page.get_by_role("button", name="Take next patient").click()
    assigned = await patient.next(f.Assigned)
    await expect(panel(page, assigned.consultation)).to_be_visible()
    return assigned.consultation


async def test_a_doctor_signs_in_takes_a_patient_chats_and_ends(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    page = await sign_in(open_page, web_desk, departments=("general",))
    assert "token" not in page.url
    await page.get_by_role("button", name="Take next patient").click()
    await expect(page.locator("#take-next-note")).to_have_text("Nobody is waiting right now.")
    patient = await connect("p1")
    await patient.join("general", "sore throat and chest pain since yesterday", "18-39", "days")
    await expect(waiting(page, "general")).to_have_text("1")

    consultation = await take_patient(page, patient)
    case = panel(page, consultation)
    await expect(case.locator(".symptoms")).to_have_text(
        "sore throat and chest pain since yesterday"
    )
    await expect(case.locator(".case-flags")).to_contain_text("chest pain")
    await expect(case.locator(".case-flags")).to_contain_text("Emergency")
    await expect(case.locator("dl.intake")).to_contain_text("18-39 years")
    await expect(waiting(page, "general")).to_have_text("0")

    await patient.send(consultation, "hello doctor")
    await expect(case.locator(".msg.from-patient .bubble")).to_have_text(["hello doctor"])
    # The patient's message was on screen: the doctor's read mark reaches the patient.
    read = await patient.next(f.ReadReceipt, lambda frame: frame.role == "doctor")
    assert read.seq == 1

    await patient.typing(consultation)
    await expect(case.get_by_text("The patient is typing…")).to_be_visible()
    composer = case.get_by_label("Message to the patient")
    await composer.fill("Hello, I am Dr Wang. How long have you had the pain?")
    await composer.press("Enter")
    await expect(case.get_by_text("The patient is typing…")).to_be_hidden()
    thread = await patient.wait_for_messages(consultation, 2)
    assert [e.text for e in thread.in_order()] == [
        "hello doctor",
        "Hello, I am Dr Wang. How long have you had the pain?",
    ]
    await patient.send(consultation, "two days")
    await expect(case.locator(".msg .bubble")).to_have_text(
        ["hello doctor", "Hello, I am Dr Wang. How long have you had the pain?", "two days"]
    )
    # Shown at once, so read at once (a read mark implies delivered).
    await patient.next(f.ReadReceipt, lambda frame: frame.role == "doctor" and frame.seq == 3)
    mine = case.locator(".msg.from-me .mark")
    await expect(mine).to_have_text(["Sent"])
    await patient.mark_delivered(consultation, 2)
    await expect(mine).to_have_text(["Delivered"])
    await patient.mark_read(consultation, 3)
    await expect(mine).to_have_text(["Read"])

    summary = case.get_by_label("Summary for the patient (required)")
    await summary.fill("Chest pain on swallowing; see your GP within two days.")
    await case.get_by_role("button", name="End consultation").click()
    ended = await patient.next(f.Ended)
    assert ended.summary == "Chest pain on swallowing; see your GP within two days."
    assert ended.outcome == "completed"
    await expect(case.get_by_text("This consultation has ended.")).to_be_visible()
    await expect(case.locator(".ended-box .summary")).to_have_text(ended.summary)
    await expect(composer).to_be_hidden()
    await case.get_by_role("button", name="Close").click()
    await expect(case).to_have_count(0)
    await expect(page.get_by_text("No consultation open.")).to_be_visible()


async def two_consultations(
    page: Page, connect: Connect
) -> tuple[tuple[ChatClient, str], tuple[ChatClient, str]]:
    first = await connect("p1")
    await first.join("general", "a rash on my arm", "40-64", "weeks")
    one = await take_patient(page, first)
    second = await connect("p2")
    await second.join("general", "high fever and a cough", "2-12", "days")
    two = await take_patient(page, second)
    return (first, one), (second, two)


async def test_a_message_to_the_tab_not_shown_raises_its_unread_badge(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    page = await sign_in(open_page, web_desk, departments=("general",))
    (first, one), (second, two) = await two_consultations(page, connect)
    # Taking the second patient showed their tab; the first is behind it.
    await expect(tab(page, two)).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#load")).to_have_text("Patients 2 / 3")

    await first.send(one, "is it contagious?")
    await first.send(one, "it itches too")
    badge = tab(page, one).locator('[data-field="unread"]')
    await expect(badge).to_have_text("2")
    await expect(page).to_have_title("(2) Doctor console — chatsvc")
    # Received but not seen: delivered, not read.
    got = await first.next(f.DeliveryReceipt, lambda frame: frame.seq == 2)
    assert got.role == "doctor"
    assert not [frame for frame in first.inbox if isinstance(frame, f.ReadReceipt)]
    await expect(tab(page, two).locator('[data-field="unread"]')).to_have_count(0)
    await second.send(two, "my son is very hot")
    await expect(panel(page, two).locator(".msg.from-patient .bubble")).to_have_text(
        ["my son is very hot"]
    )
    await expect(tab(page, two).locator('[data-field="unread"]')).to_have_count(0)
    await screenshot(page, "doctor-desktop-two-consultations")

    await tab(page, one).click()
    await expect(panel(page, one)).to_be_visible()
    await expect(panel(page, two)).to_be_hidden()
    await expect(badge).to_have_count(0)
    await expect(page).to_have_title("Doctor console — chatsvc")
    read = await first.next(f.ReadReceipt, lambda frame: frame.role == "doctor")
    assert read.seq == 2
    # The keyboard moves between tabs too.
    await tab(page, one).press("ArrowRight")
    await expect(tab(page, two)).to_be_focused()
    await expect(panel(page, two)).to_be_visible()


async def test_a_push_department_offers_the_patient_and_accept_opens_it(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    page = await sign_in(open_page, web_desk, departments=("psych",))
    patient = await connect("p3")
    await patient.join("psych", "I feel anxious all the time", "18-39", "months")
    card = page.locator(".offer-card")
    await expect(card).to_contain_text("I feel anxious all the time")
    await expect(card.locator(".countdown")).to_contain_text("Accept within")
    await expect(page.locator("#announcer")).to_contain_text("New patient offered to you")
    await card.get_by_role("button", name="Accept").click()
    assigned = await patient.next(f.Assigned)
    await expect(panel(page, assigned.consultation)).to_be_visible()
    await expect(panel(page, assigned.consultation).locator(".symptoms")).to_have_text(
        "I feel anxious all the time"
    )
    await expect(card).to_have_count(0)
    await patient.close()
    await expect(panel(page, assigned.consultation).locator(".presence")).to_have_text(
        "The patient's connection dropped. Waiting for them to come back…"
    )


async def test_a_transfer_closes_the_tab_and_queues_the_patient_again(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    page = await sign_in(open_page, web_desk, departments=("general", "paediatrics"))
    patient = await connect("p4")
    await patient.join("general", "my child has an earache", "2-12", "days")
    consultation = await take_patient(page, patient)
    case = panel(page, consultation)
    await case.get_by_label("To the queue of").select_option(label="Paediatrics")
    await case.get_by_role("button", name="Transfer").click()
    await expect(case).to_have_count(0)
    await expect(page.locator(".notes")).to_contain_text("transferred to Paediatrics")
    queued = await patient.next(f.Queued, lambda frame: frame.department == "paediatrics")
    assert queued.position == 1
    await expect(waiting(page, "paediatrics")).to_have_text("1")


async def test_earlier_consultations_of_the_patient_are_shown(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    colleague = await connect(
        "d9", tokens.Role.DOCTOR, departments=("general",), capacity=1, name="Dr Zhao"
    )
    await colleague.set_status("available")
    patient = await connect("p5")
    await patient.join("general", "headache", "40-64", "days")
    earlier = await colleague.take_next()
    await patient.next(f.Assigned)
    await colleague.end(earlier.id, "Tension headache; paracetamol and rest.")
    await colleague.set_status("offline")

    page = await sign_in(open_page, web_desk, departments=("general",))
    await patient.join("general", "the headache is back", "40-64", "weeks")
    consultation = await take_patient(page, patient)
    history = panel(page, consultation).locator(".history-item")
    await expect(history).to_have_count(1)
    await expect(history).to_contain_text("Tension headache; paracetamol and rest.")
    await expect(history).to_contain_text("Dr Zhao")
    await expect(history).to_contain_text("General")


async def test_what_a_patient_typed_is_shown_as_text(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    page = await sign_in(open_page, web_desk, departments=("general",))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    patient = await connect("p6")
    await patient.join("general", XSS)
    consultation = await take_patient(page, patient)
    case = panel(page, consultation)
    await expect(case.locator(".symptoms")).to_have_text(XSS)
    await patient.send(consultation, XSS)
    await expect(case.locator(".msg.from-patient .bubble")).to_have_text([XSS])
    assert await page.locator("img").count() == 0
    assert dialogs == []
    # The patient leaves: the tab says so and takes no more messages.
    await patient.end(consultation)
    await expect(case.get_by_text("The patient left the consultation.")).to_be_visible()
    await expect(case.get_by_label("Message to the patient")).to_be_hidden()
    await expect(tab(page, consultation)).to_contain_text("ended")
    await expect(page.locator("#load")).to_have_text("Patients 0 / 3")


async def test_a_refused_token_shows_the_sign_in_form_with_a_message(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    page = await open_page(web_desk.url("/doctor") + "#token=not-a-token")
    await expect(page.get_by_role("alert")).to_contain_text("This sign-in was refused")
    token_field = page.get_by_label("Sign-in token")
    await expect(token_field).to_be_visible()
    assert await token_field.get_attribute("type") == "password"
    await expect(page.locator("#console")).to_be_hidden()
    assert "token" not in page.url
    # A valid token pasted in signs in.
    link = web_desk.doctor_link(name="Dr Chen")
    await token_field.fill(link.split("#token=", 1)[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#doctor-name")).to_have_text("Dr Chen")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You have signed out of this tab.")).to_be_visible()
    await expect(token_field).to_be_visible()


async def test_the_console_fits_a_phone_with_two_consultations(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    page = await sign_in(open_page, web_desk, viewport=PHONE, departments=("general",))
    (first, one), _ = await two_consultations(page, connect)
    await first.send(one, "a very long message without spaces " + "x" * 200)
    chooser = page.get_by_label("Consultation", exact=True)
    await expect(chooser).to_be_visible()
    await expect(page.get_by_role("tablist")).to_be_hidden()
    await expect(chooser.locator("option", has_text="1 unread")).to_have_count(1)
    await chooser.select_option(one)
    await expect(panel(page, one).locator(".msg.from-patient")).to_have_count(1)
    await expect(chooser.locator("option", has_text="unread")).to_have_count(0)
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    await screenshot(page, "doctor-phone-two-consultations")


async def test_a_reload_brings_back_the_open_consultation_and_its_messages(
    web_desk: WebDesk, open_page: OpenPage, connect: Connect
) -> None:
    page = await sign_in(open_page, web_desk, departments=("general",))
    patient = await connect("p7")
    await patient.join("general", "back pain after lifting", "40-64", "days")
    consultation = await take_patient(page, patient)
    await patient.send(consultation, "it hurts when I bend")
    case = panel(page, consultation)
    await case.get_by_label("Message to the patient").fill("Does it spread to your leg?")
    await case.get_by_role("button", name="Send").click()
    await expect(case.locator(".msg .bubble")).to_have_text(
        ["it hurts when I bend", "Does it spread to your leg?"]
    )

    await page.reload()
    await expect(case.locator(".msg .bubble")).to_have_text(
        ["it hurts when I bend", "Does it spread to your leg?"]
    )
    # The desk says where the doctor stands: still available, holding one patient.
    await expect(page.get_by_label("Available")).to_be_checked()
    await expect(page.locator("#status-hint")).to_be_hidden()
    await expect(case.locator(".symptoms")).to_have_text("back pain after lifting")
    await expect(tab(page, consultation).locator('[data-field="unread"]')).to_have_count(0)
    await patient.send(consultation, "no, only the back")
    await expect(case.locator(".msg .bubble").last).to_have_text("no, only the back")


async def test_an_offer_left_to_expire_goes_and_the_doctor_is_set_away(
    make_web_desk: Callable[..., Awaitable[WebDesk]], open_page: OpenPage
) -> None:
    desk = await make_web_desk(Config(triage=TriageConfig(accept_timeout_s=1)))
    page = await sign_in(open_page, desk, departments=("psych",))
    ws_url = desk.url("/ws").replace("http://", "ws://", 1)
    async with ChatClient(ws_url, token_for(tokens.Role.PATIENT, "p8")) as patient:
        await patient.join("psych", "I cannot sleep")
        await expect(page.locator(".offer-card")).to_have_count(1)
        await expect(page.locator(".offer-card")).to_have_count(0)
        await expect(page.locator(".notes")).to_contain_text("the offer was not accepted in time")
        await expect(page.get_by_label("Away")).to_be_checked()


async def test_the_console_speaks_chinese_to_a_chinese_browser(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    page = await open_page(web_desk.doctor_link(name="王医生"), locale="zh-CN")
    await expect(page.locator("#doctor-name")).to_have_text("王医生")
    await expect(page.get_by_role("button", name="接待下一位患者")).to_be_visible()
    await expect(page.get_by_label("接诊中")).to_be_visible()
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"
