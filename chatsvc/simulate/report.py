"""The figures of a run, computed from its journal: counts, waits, abandonment, throughput,
delivery latency, errors and ETA accuracy; as text for people or one JSON object.

Pure: reads a `Journal`, never a socket or a clock. Percentiles are nearest-rank (the smallest
value with at least q% of the values at or below it), so every figure is a value that was seen.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from chatsvc.simulate.journal import Journal, Outcome, PatientRecord

# A quoted ETA counts as accurate when within this share of the wait the patient had...
ETA_TOLERANCE = 0.25
# ...or within this many seconds of it: ETAs are whole seconds, waits of a second or two are
# common in a small run, and 25% of 0.4 s asks for more precision than an ETA has.
ETA_FLOOR_S = 1.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank q-th percentile (0 < q <= 100); None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Spread:
    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        mean = sum(values) / len(values) if values else None
        return cls(
            len(values),
            _round(mean),
            _round(percentile(values, 50)),
            _round(percentile(values, 90)),
            _round(percentile(values, 99)),
        )


@dataclass(frozen=True)
class Counts:
    arrived: int  # patients the plan started
    joined: int  # ... whose join the desk accepted
    red_flagged: int  # ... whose intake raised a red flag at the desk
    served: int  # consultations started (a doctor took or accepted the patient)
    completed: int  # ended by the doctor after every planned message
    cut_short: int  # ended by the doctor when the drain ran out (or the other side went quiet)
    end_failed: int  # the doctor's end was refused or lost
    foreign: int  # patients not of this run (an earlier run's, a real one): ended at once
    abandoned: int  # left the queue after their patience ran out
    still_waiting: int  # in the queue when the run ended
    messages_sent: int  # acknowledged by the desk (both sides)
    messages_delivered: int  # ... and seen by the other side


@dataclass(frozen=True)
class DepartmentCounts:
    joined: int
    served: int
    ended: int  # completed, cut short or foreign
    abandoned: int
    still_waiting: int


@dataclass(frozen=True)
class EtaAccuracy:
    compared: int  # served patients who were quoted an ETA when they joined
    mean_abs_error_s: float | None
    within_25pct: float | None  # share of them whose ETA was within ±25% (or 1 s) of the wait


@dataclass(frozen=True)
class Report:
    duration_s: float  # how long arrivals ran
    elapsed_s: float  # until the last client closed
    counts: Counts
    by_department: dict[str, DepartmentCounts]
    wait_s: Spread  # join to assignment, of the served
    abandonment_rate: float | None  # abandoned / joined
    consultations_per_minute: float  # served per minute of arrivals
    completed_per_minute: float
    delivery_latency_ms: Spread  # send to the other side holding it
    errors: dict[str, int]
    eta: EtaAccuracy

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=False)


def build_report(journal: Journal) -> Report:
    patients = journal.patients
    joined = [p for p in patients if p.joined_s is not None]
    outcomes = [c.outcome for c in journal.consultations.values()]
    waits = [w for p in patients if (w := p.wait_s) is not None]
    latencies = [
        (m.delivered_s - m.sent_s) * 1000
        for m in journal.messages.values()
        if m.delivered_s is not None
    ]
    served = len(journal.consultations)
    abandoned = sum(1 for p in patients if p.left_s is not None)
    minutes = journal.duration_s / 60 if journal.duration_s > 0 else math.nan
    counts = Counts(
        arrived=len(patients),
        joined=len(joined),
        red_flagged=sum(1 for p in joined if p.flagged),
        served=served,
        completed=outcomes.count(Outcome.COMPLETED),
        cut_short=outcomes.count(Outcome.CUT_SHORT),
        end_failed=outcomes.count(Outcome.FAILED),
        foreign=outcomes.count(Outcome.FOREIGN),
        abandoned=abandoned,
        still_waiting=sum(1 for p in patients if p.still_waiting),
        messages_sent=len(journal.messages),
        messages_delivered=len(latencies),
    )
    return Report(
        duration_s=round(journal.duration_s, 3),
        elapsed_s=round(journal.ended_s, 3),
        counts=counts,
        by_department=_by_department(journal),
        wait_s=Spread.of(waits),
        abandonment_rate=_round(abandoned / len(joined)) if joined else None,
        consultations_per_minute=_round(served / minutes) or 0.0,
        completed_per_minute=_round(counts.completed / minutes) or 0.0,
        delivery_latency_ms=Spread.of(latencies),
        errors=dict(sorted(journal.errors.items())),
        eta=eta_accuracy(patients),
    )


def _by_department(journal: Journal) -> dict[str, DepartmentCounts]:
    names = sorted({p.plan.department for p in journal.patients})
    result = {}
    for name in names:
        mine = [p for p in journal.patients if p.plan.department == name]
        cases = [c for c in journal.consultations.values() if c.department == name]
        result[name] = DepartmentCounts(
            joined=sum(1 for p in mine if p.joined_s is not None),
            served=len(cases),
            ended=sum(1 for c in cases if c.outcome not in (None, Outcome.FAILED)),
            abandoned=sum(1 for p in mine if p.left_s is not None),
            still_waiting=sum(1 for p in mine if p.still_waiting),
        )
    return result


def eta_accuracy(patients: Sequence[PatientRecord]) -> EtaAccuracy:
    """The ETA quoted at join against the wait each served patient had."""
    pairs = [
        (float(p.first_eta_s), wait)
        for p in patients
        if p.first_eta_s is not None and (wait := p.wait_s) is not None
    ]
    if not pairs:
        return EtaAccuracy(0, None, None)
    errors = [abs(eta - wait) for eta, wait in pairs]
    within = sum(
        1
        for (_eta, wait), error in zip(pairs, errors, strict=True)
        if error <= max(ETA_TOLERANCE * wait, ETA_FLOOR_S)
    )
    return EtaAccuracy(len(pairs), _round(sum(errors) / len(errors)), _round(within / len(pairs)))


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


# -- the timeline (for the chart) ----------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    times_s: list[float]
    waiting: list[int]  # patients in the queue at each time
    longest_wait_s: list[float]  # the longest current wait at each time
    served_at_s: list[float]  # each served patient's assignment time...
    served_wait_s: list[float]  # ... and the wait they had


def timeline(journal: Journal, step_s: float = 1.0) -> Timeline:
    """Samples every `step_s` from the start to the end of the run."""
    end = journal.ended_s
    spans = [(p.joined_s, _left_queue(p)) for p in journal.patients if p.joined_s is not None]
    times, waiting, longest = [], [], []
    steps = int(end // step_s) + 1 if end > 0 else 1
    for i in range(steps):
        t = i * step_s
        current = [t - start for start, stop in spans if start <= t < stop]
        times.append(round(t, 3))
        waiting.append(len(current))
        longest.append(round(max(current, default=0.0), 3))
    served = [p for p in journal.patients if p.wait_s is not None]
    return Timeline(
        times,
        waiting,
        longest,
        [p.assigned_s or 0.0 for p in served],
        [p.wait_s or 0.0 for p in served],
    )


def _left_queue(patient: PatientRecord) -> float:
    """When the patient stopped waiting (never, for one still waiting at the end)."""
    for moment in (patient.assigned_s, patient.left_s):
        if moment is not None:
            return moment
    return math.inf


# -- text ----------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    c = report.counts
    lines = [
        f"chatsvc simulate: {report.duration_s:g} s of arrivals, {report.elapsed_s:g} s in all",
        f"  patients     arrived {c.arrived}, joined {c.joined} ({c.red_flagged} red-flagged)",
        f"  served       {c.served} consultations started: {c.completed} completed, "
        f"{c.cut_short} cut short, {c.end_failed} failed to end, {c.foreign} not this run's",
        f"  abandoned    {c.abandoned} (rate {_pct(report.abandonment_rate)}), "
        f"still waiting at the end {c.still_waiting}",
        f"  waits        {_spread(report.wait_s, 's')}",
        f"  throughput   {report.consultations_per_minute:g} consultations started a minute, "
        f"{report.completed_per_minute:g} completed",
        f"  messages     {c.messages_sent} sent, {c.messages_delivered} delivered; latency "
        f"{_spread(report.delivery_latency_ms, 'ms')}",
        f"  ETA          {report.eta.compared} quoted: mean absolute error "
        f"{_num(report.eta.mean_abs_error_s, 's')}, within ±25% {_pct(report.eta.within_25pct)}",
        "  errors       "
        + (", ".join(f"{code} {n}" for code, n in report.errors.items()) or "none"),
    ]
    for name, d in report.by_department.items():
        lines.append(
            f"  {name:<12} joined {d.joined}, served {d.served}, ended {d.ended}, "
            f"abandoned {d.abandoned}, still waiting {d.still_waiting}"
        )
    return "\n".join(lines)


def _spread(spread: Spread, unit: str) -> str:
    if not spread.count:
        return "none"
    return (
        f"p50 {_num(spread.p50, unit)}, p90 {_num(spread.p90, unit)}, "
        f"p99 {_num(spread.p99, unit)} (n={spread.count})"
    )


def _num(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.1f} {unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
