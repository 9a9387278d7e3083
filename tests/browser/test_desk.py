"""The three pages together: a patient in the widget, a doctor in the console and a supervisor
on the dashboard, each in their own browser context, through one real gateway; and the same
consultation across a restart of a gateway process."""

from __future__ import annotations

import signal
from pathlib import Path

from playwright.async_api import Locator, Page, expect
from redis.asyncio import Redis

from chatsvc import tokens
from tests.browser.conftest import OpenPage, PageErrors, WebDesk, screenshot, staff_token
from tests.browser.patient_steps import bubbles, join_queue, send_as_patient
from tests.conftest import TEST_SECRET, write_config
from tests.support.process import GatewayProcess
from triage import keys

SUMMARY = "Viral pharyngitis: rest, fluids, paracetamol; come back if it gets worse."


def figure(page: Page, field: str, department: str = "general") -> Locator:
    return page.locator(f'dd[data-dept="{department}"][data-figure="{field}"]')


async def counts_are(page: Page, waiting: int, active: int, ended: int) -> None:
    await expect(figure(page, "waiting")).to_have_text(str(waiting))
    await expect(figure(page, "active_consultations")).to_have_text(str(active))
    await expect(figure(page, "ended_last_minute")).to_have_text(str(ended))


async def sign_in_doctor(open_page: OpenPage, link: str) -> Page:
    page = await open_page(link)
    available = page.get_by_label("Available")
    await available.check()
    await expect(available).to_be_checked()
    return page


def doctor_case(page: Page) -> Locator:
    return page.locator(".case[data-consultation]")


async def send_as_doctor(page: Page, text: str) -> None:
    composer = doctor_case(page).get_by_label("Message to the patient")
    await composer.fill(text)
    await composer.press("Enter")


async def test_a_consultation_from_the_widget_to_the_console_counted_by_the_dashboard(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    supervisor = await open_page(web_desk.supervisor_link())
    await counts_are(supervisor, waiting=0, active=0, ended=0)
    doctor = await sign_in_doctor(open_page, web_desk.doctor_link(departments=("general",)))

    patient = await open_page(web_desk.url("/widget"))
    await join_queue(patient, "sore throat for three days")
    await counts_are(supervisor, waiting=1, active=0, ended=0)
    await expect(doctor.locator('[data-department="general"] [data-field="waiting"]')).to_have_text(
        "1"
    )

    await doctor.get_by_role("button", name="Take next patient").click()
    await expect(patient.locator("#chat-heading")).to_be_focused()
    await counts_are(supervisor, waiting=0, active=1, ended=0)

    await send_as_patient(patient, "Hello doctor, it hurts to swallow.")
    await expect(doctor_case(doctor).locator(".msg.from-patient .bubble")).to_have_text(
        ["Hello doctor, it hurts to swallow."]
    )
    await send_as_doctor(doctor, "Any fever?")
    await expect(bubbles(patient, "theirs")).to_have_text(["Any fever?"])
    await send_as_patient(patient, "No fever.")
    await expect(doctor_case(doctor).locator(".msg .bubble")).to_have_text(
        ["Hello doctor, it hurts to swallow.", "Any fever?", "No fever."]
    )
    await expect(patient.locator("#chat-log li.mine .status").last).to_have_text("Read")
    await screenshot(patient, "desk-patient-chat")
    await screenshot(doctor, "desk-doctor-chat")

    case = doctor_case(doctor)
    await case.get_by_label("Summary for the patient (required)").fill(SUMMARY)
    await case.get_by_role("button", name="End consultation").click()
    await expect(patient.locator("#end-summary")).to_have_text(SUMMARY)
    await counts_are(supervisor, waiting=0, active=0, ended=1)
    await screenshot(supervisor, "desk-supervisor")


async def test_a_gateway_restart_mid_chat_shows_reconnecting_and_loses_nothing(
    tmp_path: Path,
    redis: Redis,
    redis_url: str,
    free_port: int,
    open_page: OpenPage,
    page_errors: PageErrors,
) -> None:
    # While no gateway listens, the browser logs each refused connection attempt.
    page_errors.allowed.append("ERR_CONNECTION_REFUSED")
    config = write_config(
        tmp_path,
        f'[server]\nport = {free_port}\n\n[redis]\nurl = "{redis_url}"\n\n'
        f'[auth]\ntoken_secret = "{TEST_SECRET}"\n',
    )
    base = f"http://127.0.0.1:{free_port}"
    first = await GatewayProcess(config).start()
    second: GatewayProcess | None = None
    try:
        await first.wait_event("redis_ready")
        doctor_token = staff_token(
            tokens.Role.DOCTOR, "d1", "Dr Wang", departments=("general",), capacity=2
        )
        doctor = await sign_in_doctor(open_page, f"{base}/doctor#token={doctor_token}")
        patient = await open_page(f"{base}/widget")
        await join_queue(patient)
        await doctor.get_by_role("button", name="Take next patient").click()
        await expect(patient.locator("#chat-heading")).to_be_focused()
        await send_as_patient(patient, "before the restart")
        await expect(doctor_case(doctor).locator(".msg .bubble")).to_have_text(
            ["before the restart"]
        )

        first.send_signal(signal.SIGTERM)
        assert await first.wait_exit() == 0
        await expect(patient.locator("#connection-banner")).to_contain_text("Reconnecting")
        await expect(doctor.locator("#conn-banner")).to_be_visible()
        await send_as_patient(patient, "typed while it restarted")
        await send_as_doctor(doctor, "also typed while it restarted")

        second = await GatewayProcess(config).start()
        await second.wait_event("redis_ready")
        await expect(patient.locator("#connection-banner")).to_be_hidden(timeout=30_000)
        await expect(doctor.locator("#conn-banner")).to_be_hidden(timeout=30_000)
        # Both pages resend what was typed meanwhile; who gets back first is stored first.
        during = {"typed while it restarted", "also typed while it restarted"}
        await expect(bubbles(patient)).to_have_count(3)
        await expect(doctor_case(doctor).locator(".msg .bubble")).to_have_count(3)
        consultation = await doctor_case(doctor).get_attribute("data-consultation")
        assert consultation is not None
        stored = [f["body"] for _, f in await redis.xrange(keys.transcript_stream(consultation))]
        assert stored[0] == "before the restart" and set(stored[1:]) == during
        assert len(stored) == 3  # each stored once: the resends were recognised
        await expect(bubbles(patient)).to_have_text(stored)
        await expect(doctor_case(doctor).locator(".msg .bubble")).to_have_text(stored)
    finally:
        for process in (first, second):
            if process is not None:
                await process.kill()
