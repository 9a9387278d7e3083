"""The supervisor dashboard: the live figures of a real desk, its alerts and charts, signing in.

The other people on the desk are real protocol clients (chatsvc.client.ChatClient) on the same
gateway; every figure is awaited with Playwright's `expect` until it shows the exact number the
desk's metrics frame carries (pushed every second).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Locator, Page, expect

from chatsvc import tokens
from chatsvc.client import ChatClient
from chatsvc.config import Config, Department, MetricsConfig, TriageConfig
from tests.browser.conftest import (
    PHONE,
    ClientFactory,
    OpenPage,
    WebDesk,
    screenshot,
    staff_token,
)
from tests.e2e.conftest import token_for

Connect = Callable[..., Awaitable[ChatClient]]
# Enough metrics frames (one a second) for a chart to have visibly grown.
GROWTH = 2


@pytest.fixture
def people(protocol_clients: ClientFactory) -> Callable[..., Awaitable[ChatClient]]:
    """Connects patients and doctors to a desk as real protocol clients (closed at teardown)."""

    async def connect(
        desk: WebDesk,
        role: tokens.Role,
        user: str,
        departments: tuple[str, ...] = ("general",),
        capacity: int = 3,
    ) -> ChatClient:
        staff = role is not tokens.Role.PATIENT
        token = token_for(
            role,
            user,
            departments if staff else (),
            capacity if staff else 0,
            name=f"Dr {user.upper()}" if staff else "",
        )
        return await protocol_clients(desk, token)

    return connect


def figure(page: Page, department: str, field: str) -> Locator:
    return page.locator(f'dd[data-dept="{department}"][data-figure="{field}"]')


def desk_figure(page: Page, field: str) -> Locator:
    return page.locator(f'dd[data-scope="desk"][data-figure="{field}"]')


async def chart_points(page: Page, chart: str) -> int:
    return int(await page.evaluate(f"window.__dashboard.charts.{chart}.data[0].length"))


async def wait_for_chart_growth(page: Page, chart: str, more: int = GROWTH) -> None:
    before = await chart_points(page, chart)
    await page.wait_for_function(
        f"() => window.__dashboard.charts.{chart}.data[0].length >= {before + more}"
    )


async def test_the_dashboard_counts_exactly_what_happens_on_the_desk(
    web_desk: WebDesk, open_page: OpenPage, people: Connect
) -> None:
    page = await open_page(web_desk.supervisor_link())
    for field in ("waiting", "active_consultations", "ended_last_minute"):
        await expect(figure(page, "general", field)).to_have_text("0")

    p1 = await people(web_desk, tokens.Role.PATIENT, "p1")
    p2 = await people(web_desk, tokens.Role.PATIENT, "p2")
    await p1.join("general", "sore throat for two days")
    await p2.join("general", "a rash on my arm")
    await expect(figure(page, "general", "waiting")).to_have_text("2")
    await expect(desk_figure(page, "waiting")).to_have_text("2")
    await expect(figure(page, "paediatrics", "waiting")).to_have_text("0")

    doctor = await people(web_desk, tokens.Role.DOCTOR, "d1")
    await doctor.set_status("available")
    await expect(figure(page, "general", "doctors_available")).to_have_text("1")
    consultation = await doctor.take_next()
    await expect(figure(page, "general", "waiting")).to_have_text("1")
    await expect(figure(page, "general", "active_consultations")).to_have_text("1")
    await expect(figure(page, "general", "started_last_minute")).to_have_text("1")
    await expect(desk_figure(page, "active_consultations")).to_have_text("1")

    await doctor.end(consultation.id, "Viral pharyngitis: rest and fluids.")
    await expect(figure(page, "general", "active_consultations")).to_have_text("0")
    await expect(figure(page, "general", "ended_last_minute")).to_have_text("1")
    await expect(desk_figure(page, "ended_last_minute")).to_have_text("1")
    await expect(figure(page, "general", "waiting")).to_have_text("1")
    # The time of the figures on screen is the desk's, from the frame.
    await expect(page.get_by_test_id("updated")).to_be_visible()
    assert int(await page.locator("#updated-time").get_attribute("data-computed-ms") or 0) > 0
    await screenshot(page, "supervisor-desktop-scenario")


async def test_a_department_whose_quotes_pass_its_max_wait_is_flagged_in_surge(
    make_web_desk: Callable[..., Awaitable[WebDesk]], open_page: OpenPage, people: Connect
) -> None:
    departments = (
        Department(id="general", name="General medicine", max_wait_s=60),
        Department(id="paediatrics", name="Paediatrics", max_wait_s=1200),
        Department(id="psych", name="Psychological counselling", routing="push"),
    )
    desk = await make_web_desk(
        Config(departments=departments, triage=TriageConfig(mean_consult_s=300))
    )
    page = await open_page(desk.supervisor_link())
    await expect(figure(page, "general", "waiting")).to_have_text("0")
    await expect(page.locator('[data-surge="general"]')).to_be_hidden()

    doctor = await people(desk, tokens.Role.DOCTOR, "d1", capacity=1)
    await doctor.set_status("available")
    first = await people(desk, tokens.Role.PATIENT, "p1")
    await first.join("general", "a cough")
    # One ahead and one doctor: a round of mean_consult_s (300 s), over the 60 s maximum.
    second = await people(desk, tokens.Role.PATIENT, "p2")
    quote = await second.quote("general")
    assert quote.surge and quote.eta_s == 300

    await expect(page.locator('[data-surge="general"]')).to_be_visible()
    await expect(page.locator('[data-dept-card="general"]')).to_have_class("dept-card surging")
    await expect(page.locator('[data-surge="paediatrics"]')).to_be_hidden()


async def test_a_red_flagged_patient_waiting_past_the_alert_time_is_a_safety_alert(
    make_web_desk: Callable[..., Awaitable[WebDesk]], open_page: OpenPage, people: Connect
) -> None:
    desk = await make_web_desk(Config(metrics=MetricsConfig(red_flag_alert_s=1)))
    page = await open_page(desk.supervisor_link())
    await expect(page.get_by_text("No safety alerts.")).to_be_visible()

    patient = await people(desk, tokens.Role.PATIENT, "p1")
    joined = await patient.join("general", "crushing chest pain since this morning")
    assert joined.red_flags

    alert = page.locator(f'li[data-alert="overdue"][data-ticket="{joined.ticket}"]')
    await expect(alert).to_be_visible()
    await expect(alert).to_have_attribute("data-alert-dept", "general")
    await expect(alert).to_contain_text("General medicine")
    # Screen readers hear it once, through the role=alert region.
    await expect(page.get_by_test_id("alert-announcer")).to_contain_text(joined.ticket)
    await expect(figure(page, "general", "red_flags_overdue")).to_have_text("1")
    await expect(page.get_by_text("No safety alerts.")).to_be_hidden()
    assert (await page.title()).startswith("(1)")

    # It leaves unserved: no longer waiting, but an alert of another kind. A second red flag
    # waits past the alert time after that, so it is the newest and comes first.
    await patient.leave()
    left = page.locator(f'li[data-alert="abandoned"][data-ticket="{joined.ticket}"]')
    await expect(left).to_be_visible()
    await expect(alert).to_have_count(0)
    await expect(figure(page, "general", "abandoned_last_minute")).to_have_text("1")
    second = await people(desk, tokens.Role.PATIENT, "p2")
    still_waiting = await second.join("general", "chest pain and sweating")
    await expect(page.locator("li[data-alert]")).to_have_count(2)
    order = await page.locator("li[data-alert]").evaluate_all(
        "items => items.map(item => item.dataset.ticket)"
    )
    assert order == [still_waiting.ticket, joined.ticket]


async def test_the_charts_are_drawn_by_uplot_and_grow_with_each_frame(
    web_desk: WebDesk, open_page: OpenPage, people: Connect
) -> None:
    page = await open_page(web_desk.supervisor_link())
    await expect(figure(page, "general", "waiting")).to_have_text("0")
    await expect(page.locator(".chart-host canvas")).to_have_count(6)
    assert await page.evaluate("typeof window.uPlot") == "function"

    # One line per department of the supervisor (three), and one desk-wide line.
    assert await page.evaluate("window.__dashboard.charts.waiting.series.length") == 1 + 3
    assert await page.evaluate("window.__dashboard.charts.messages.series.length") == 1 + 1
    await wait_for_chart_growth(page, "waiting")

    patient = await people(web_desk, tokens.Role.PATIENT, "p1")
    await patient.join("general", "a headache")
    await expect(figure(page, "general", "waiting")).to_have_text("1")
    # The waiting chart's general line (series 1) ends at the figure shown in the tile.
    await page.wait_for_function("() => window.__dashboard.charts.waiting.data[1].at(-1) === 1")
    await wait_for_chart_growth(page, "active")

    # They follow the window's width.
    wide = await page.evaluate("window.__dashboard.charts.waiting.width")
    await page.set_viewport_size(PHONE)
    await page.wait_for_function(
        f"() => window.__dashboard.charts.waiting.width < {min(wide, PHONE['width'])}"
    )


async def test_the_vendored_chart_library_is_served_with_its_licence(web_desk: WebDesk) -> None:
    response = await web_desk.gateway.get("/static/vendor/uplot/LICENSE")
    assert response.status == 200
    text = await response.text()
    assert "MIT License" in text and "Leon Sorokin" in text


async def test_a_doctor_sign_in_is_refused_with_a_clear_message(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    token = staff_token(tokens.Role.DOCTOR, "d1", "Dr Wang")
    page = await open_page(web_desk.url("/supervisor") + "#token=" + token)
    message = page.get_by_test_id("sign-in-message")
    await expect(message).to_have_text(
        "This is a doctor's sign-in, not a supervisor's."
        " The dashboard needs a supervisor's sign-in link."
    )
    await expect(page.get_by_label("Supervisor sign-in token")).to_be_visible()
    await expect(page.locator("#dashboard")).to_be_hidden()
    # Not kept: a reload does not try the doctor's token again.
    assert await page.evaluate("sessionStorage.length") == 0
    assert "token" not in page.url


async def test_a_token_the_desk_refuses_shows_the_form_again(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    page = await open_page(web_desk.url("/supervisor") + "#token=not-a-token")
    await expect(page.get_by_test_id("sign-in-message")).to_contain_text("sign-in was refused")
    await expect(page.get_by_label("Supervisor sign-in token")).to_be_focused()


async def test_a_pasted_token_signs_in_with_the_keyboard_and_sign_out_forgets_it(
    web_desk: WebDesk, open_page: OpenPage
) -> None:
    page = await open_page(web_desk.url("/supervisor"))
    field = page.get_by_label("Supervisor sign-in token")
    await expect(field).to_be_focused()
    await page.keyboard.type(staff_token(tokens.Role.SUPERVISOR, "s1", "Head nurse Li"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Signed in as Head nurse Li")).to_be_visible()
    await expect(figure(page, "general", "waiting")).to_have_text("0")
    assert await page.evaluate("sessionStorage.length") == 1

    sign_out = page.get_by_role("button", name="Sign out")
    await sign_out.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("sign-in-message")).to_have_text("You have signed out.")
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_the_dashboard_keeps_updating_after_a_reconnect(
    web_desk: WebDesk, open_page: OpenPage, people: Connect
) -> None:
    page = await open_page(web_desk.supervisor_link())
    await expect(figure(page, "general", "waiting")).to_have_text("0")
    await page.evaluate(
        """() => {
        const connection = window.__dashboard.connection;
        window.__droppedSocket = connection._socket;
        connection._socket.close(1000, "dropped by the test");
    }"""
    )
    await page.wait_for_function(
        """() => {
        const connection = window.__dashboard.connection;
        return connection.open && connection._socket !== window.__droppedSocket;
    }"""
    )
    patient = await people(web_desk, tokens.Role.PATIENT, "p1")
    await patient.join("general", "a cough")
    await expect(figure(page, "general", "waiting")).to_have_text("1")
    await expect(page.get_by_test_id("connection-banner")).to_be_hidden()
    await wait_for_chart_growth(page, "waiting")


async def test_the_dashboard_reads_in_chinese(web_desk: WebDesk, open_page: OpenPage) -> None:
    page = await open_page(web_desk.supervisor_link(), locale="zh-CN")
    await expect(page.get_by_role("heading", name="主管看板")).to_be_visible()
    await expect(figure(page, "general", "waiting")).to_have_text("0")
    labels = await page.locator("dt").all_text_contents()
    assert "等待人数" in labels
    assert not [label for label in labels if label.startswith("figure.")]


async def busy_desk(make_web_desk: Callable[..., Awaitable[WebDesk]], people: Connect) -> WebDesk:
    """A desk with something in every panel: queues, a consultation, an alert, a surge."""
    desk = await make_web_desk(
        Config(metrics=MetricsConfig(red_flag_alert_s=1), triage=TriageConfig(mean_consult_s=300))
    )
    doctor = await people(desk, tokens.Role.DOCTOR, "d1", ("general",), 2)
    await doctor.set_status("available")
    arrivals = [
        ("general", "sore throat"),
        ("general", "back pain after lifting"),
        ("paediatrics", "my son has a fever"),
    ]
    for index, (department, symptoms) in enumerate(arrivals):
        patient = await people(desk, tokens.Role.PATIENT, f"p{index}")
        await patient.join(department, symptoms)
    await doctor.take_next()
    # After the doctor took one: a red flag goes first, and would have been taken.
    flagged = await people(desk, tokens.Role.PATIENT, "p-flagged")
    await flagged.join("general", "chest pain when climbing stairs")
    return desk


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_a_busy_desk_fits_the_screen(
    size: str,
    make_web_desk: Callable[..., Awaitable[WebDesk]],
    open_page: OpenPage,
    people: Connect,
) -> None:
    desk = await busy_desk(make_web_desk, people)
    page = await open_page(desk.supervisor_link(), viewport=PHONE if size == "phone" else None)
    await expect(page.locator('li[data-alert="overdue"]')).to_have_count(1)
    await expect(figure(page, "general", "active_consultations")).to_have_text("1")
    await page.wait_for_function("() => window.__dashboard.charts.waiting.data[0].length >= 4")
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
    await screenshot(page, f"supervisor-{size}")
    await page.locator(".charts").scroll_into_view_if_needed()
    await screenshot(page, f"supervisor-{size}-charts")
