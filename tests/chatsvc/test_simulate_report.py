"""The simulator's report from a hand-made journal: counts, percentiles, ETA accuracy, the
timeline, the text and JSON forms, and the chart file."""

from __future__ import annotations

import json
import math
from pathlib import Path

from chatsvc.simulate.arrivals import PatientPlan
from chatsvc.simulate.chart import write_chart
from chatsvc.simulate.journal import Journal, Outcome
from chatsvc.simulate.report import build_report, percentile, render_text, timeline


def plan(index: int, department: str = "general") -> PatientPlan:
    return PatientPlan(
        index=index,
        at_s=float(index),
        department=department,
        red_flag=False,
        symptoms="dry cough for a week",
        age_band="18-39",
        duration="days",
        patience_s=math.inf,
        messages=1,
        think_s=(0.0,),
        reply_s=(0.0,),
    )


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def journal_of_four() -> Journal:
    """Served with a good ETA, served with a bad one, abandoned, still waiting."""
    journal = Journal(duration_s=60.0, ended_s=70.0)
    served = journal.add_patient(plan(1), "p1")
    served.joined_s, served.first_eta_s, served.assigned_s = 1.0, 10, 11.0  # waited 10, quoted 10
    served.consultation = "c1"
    late = journal.add_patient(plan(2, "psych"), "p2")
    late.joined_s, late.first_eta_s, late.assigned_s = 2.0, 60, 22.0  # waited 20, quoted 60
    late.consultation, late.flagged = "c2", True
    gone = journal.add_patient(plan(3), "p3")
    gone.joined_s, gone.first_eta_s, gone.left_s = 3.0, 30, 8.0
    waiting = journal.add_patient(plan(4), "p4")
    waiting.joined_s, waiting.still_waiting = 50.0, True
    journal.started("c1", "general", "d1", 11.0)
    journal.started("c2", "psych", "d1", 22.0)
    journal.ended("c1", Outcome.COMPLETED, 15.0)
    journal.ended("c2", Outcome.CUT_SHORT, 65.0)
    journal.sent("c1", "p1-1", "patient", 12.0)
    journal.delivered("c1", "p1-1", 12.05)
    journal.delivered("c1", "p1-1", 13.0)  # seen again later: the first time counts
    journal.sent("c1", "d1", "doctor", 13.0)
    journal.delivered("c1", "d1", 13.25)
    journal.sent("c2", "p2-1", "patient", 23.0)  # never seen by the doctor
    journal.error("in_consultation")
    journal.error("timeout")
    journal.error("in_consultation")
    return journal


def test_counts_rates_and_spreads_come_from_the_journal() -> None:
    report = build_report(journal_of_four())
    c = report.counts
    assert (c.arrived, c.joined, c.red_flagged, c.served) == (4, 4, 1, 2)
    assert (c.completed, c.cut_short, c.end_failed) == (1, 1, 0)
    assert (c.abandoned, c.still_waiting) == (1, 1)
    assert (c.messages_sent, c.messages_delivered) == (3, 2)
    assert report.abandonment_rate == 0.25
    assert report.consultations_per_minute == 2.0
    assert report.completed_per_minute == 1.0
    assert (report.wait_s.p50, report.wait_s.p99, report.wait_s.mean) == (10.0, 20.0, 15.0)
    assert (report.delivery_latency_ms.p50, report.delivery_latency_ms.p99) == (50.0, 250.0)
    assert report.errors == {"in_consultation": 2, "timeout": 1}
    general, psych = report.by_department["general"], report.by_department["psych"]
    assert (general.joined, general.served, general.ended) == (3, 1, 1)
    assert (general.abandoned, general.still_waiting) == (1, 1)
    assert (psych.joined, psych.served, psych.ended) == (1, 1, 1)


def test_eta_accuracy_compares_the_first_quote_with_the_wait_of_the_served() -> None:
    eta = build_report(journal_of_four()).eta
    assert eta.compared == 2  # the abandoned and the waiting patient had no wait to compare
    assert eta.mean_abs_error_s == 20.0  # |10 - 10| and |60 - 20|
    assert eta.within_25pct == 0.5


def test_an_empty_run_reports_nothing_rather_than_dividing_by_zero() -> None:
    report = build_report(Journal())
    assert report.counts.arrived == 0
    assert report.abandonment_rate is None
    assert report.consultations_per_minute == 0.0
    assert report.wait_s.p50 is None
    assert report.eta.compared == 0
    assert "none" in render_text(report)


def test_the_json_form_is_one_object_with_every_figure() -> None:
    data = json.loads(build_report(journal_of_four()).to_json())
    assert data["counts"]["served"] == 2
    assert data["wait_s"]["p90"] == 20.0
    assert data["eta"]["within_25pct"] == 0.5
    assert data["by_department"]["psych"]["served"] == 1
    assert data["errors"] == {"in_consultation": 2, "timeout": 1}


def test_the_text_form_names_each_figure() -> None:
    text = render_text(build_report(journal_of_four()))
    for words in ("arrived 4", "2 consultations started", "abandoned    1", "p50 10.0 s"):
        assert words in text


def test_the_timeline_counts_the_queue_and_the_longest_wait() -> None:
    line = timeline(journal_of_four(), step_s=5.0)
    assert line.times_s[:4] == [0.0, 5.0, 10.0, 15.0]
    assert line.waiting[:4] == [0, 3, 2, 1]  # p1..p3 in by 5 s; p3 left at 8, p1 taken at 11
    assert line.longest_wait_s[1] == 4.0  # p1 joined at 1 s
    assert line.waiting[-1] == 1  # p4 to the end
    assert sorted(zip(line.served_at_s, line.served_wait_s, strict=True)) == [
        (11.0, 10.0),
        (22.0, 20.0),
    ]


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "surge.png"
    write_chart(timeline(journal_of_four()), path, "a test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
