"""`chatsvc simulate` against a real gateway: the report's counts are the desk's own counts."""

from __future__ import annotations

import dataclasses

import pytest

from chatsvc.config import Config, department_red_flags
from chatsvc.gateway.keys import REDIS_LINK
from chatsvc.protocol import frames as f
from chatsvc.simulate.report import build_report
from chatsvc.simulate.runner import SetupError, simulate
from chatsvc.simulate.scenario import IntRange, Scenario
from tests.conftest import TEST_SECRET
from tests.e2e.conftest import Desk

RED_FLAGS = {d.id: tuple(sorted(department_red_flags(d))) for d in Config().departments}
DEPARTMENTS = ("general", "psych")  # one pull and one push department
# Three doctors with one slot each for ~20 patients in 10 s, consultations of a few seconds and
# patience of about 3 s: some are served, some give up, some are still waiting at the end.
SMALL_SURGE = Scenario(
    duration_s=10,
    rate_per_min=150,
    max_patients=20,
    departments=(("general", 0.7), ("psych", 0.3)),
    red_flag_share=0.2,
    doctors=3,
    capacity=1,
    response_s=0.2,
    messages=IntRange(1, 3),
    think_s=0.3,
    patience_s=3,
    drain_s=5,
    seed=7,
)


def http_url(desk: Desk) -> str:
    return str(desk.gateway.make_url("/")).rstrip("/")


@pytest.mark.timeout(120)
async def test_report_counts_equal_the_desks_counters_and_transcripts(desk: Desk) -> None:
    scenario = dataclasses.replace(SMALL_SURGE, url=http_url(desk))
    journal = await simulate(scenario, TEST_SECRET, RED_FLAGS)
    report = build_report(journal)
    counts = report.counts

    link = desk.gateway.app[REDIS_LINK]
    for department in DEPARTMENTS:
        stats = await link.engine.stats(department)
        mine = report.by_department[department]
        waiting = await link.engine.waiting(department)
        assert (mine.joined, mine.served, mine.ended, mine.abandoned, mine.still_waiting) == (
            stats.get("joined", 0),
            stats.get("matched", 0),
            stats.get("ended", 0),
            stats.get("abandoned", 0),
            len(waiting),
        ), department

    stored = 0
    for consultation in journal.consultations:
        page = await link.transcripts.read(consultation, 0, limit=1000)
        stored += sum(1 for entry in page.entries if entry.role in ("patient", "doctor"))
    assert counts.messages_sent == stored

    assert counts.arrived == 20
    assert counts.joined == counts.arrived
    assert counts.served == counts.completed + counts.cut_short
    assert counts.served + counts.abandoned + counts.still_waiting == counts.joined
    assert counts.served > 0 and counts.abandoned > 0
    # A doctor takes patient after patient, not only as many as they hold at once.
    assert report.by_department["general"].served > scenario.doctors * scenario.capacity
    assert 0 < counts.messages_delivered <= counts.messages_sent
    assert counts.red_flagged == sum(1 for p in journal.patients if p.plan.red_flag)
    assert report.wait_s.count == counts.served


async def test_a_remote_url_is_refused_without_allow_remote() -> None:
    with pytest.raises(SetupError, match="loopback"):
        await simulate(Scenario(url="http://192.0.2.10:8080"), TEST_SECRET, RED_FLAGS)


async def test_an_unreachable_service_is_a_setup_failure(free_port: int) -> None:
    scenario = Scenario(url=f"http://127.0.0.1:{free_port}")
    with pytest.raises(SetupError, match="cannot reach"):
        await simulate(scenario, TEST_SECRET, RED_FLAGS)


async def test_a_wrong_secret_is_a_setup_failure(desk: Desk) -> None:
    scenario = Scenario(url=http_url(desk))
    with pytest.raises(SetupError, match="refused a signed token"):
        await simulate(scenario, "another-secret-" + "y" * 32, RED_FLAGS)


async def test_a_desk_with_patients_waiting_is_refused(desk: Desk) -> None:
    real = await desk.patient("p-real")
    await real.join("general", "a real patient, not a rehearsal")
    scenario = Scenario(url=http_url(desk), departments=(("general", 1.0),))
    with pytest.raises(SetupError, match=r"busy: general \(1 waiting, 0 in consultation\)"):
        await simulate(scenario, TEST_SECRET, RED_FLAGS)
    assert isinstance(await real.leave(), f.Left)  # still waiting: nobody took them
