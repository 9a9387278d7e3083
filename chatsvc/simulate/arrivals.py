"""Who arrives when, and what each patient will do: every random choice of a run, made up front.

Owns the arrival process (Poisson at the scenario's rate, or its profile's varying rate by
thinning) and each patient's plan (department, intake text with or without a red-flag phrase,
patience, messages, think times). Pure: the caller passes a seeded `random.Random`, so one seed
gives one plan. Never reads a clock and never touches a socket.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chatsvc.protocol.frames import AgeBand, Duration
from chatsvc.simulate.scenario import Scenario

# Intakes that raise no flag in any shipped department list (a test checks this), so that only
# the planned share of patients is flagged.
ROUTINE_SYMPTOMS: tuple[str, ...] = (
    "dry cough for a week",
    "sore throat and a runny nose",
    "mild headache since yesterday",
    "itchy rash on my arm",
    "feeling low and tired lately",
    "stomach ache after meals",
    "trouble sleeping for two weeks",
    "earache on the left side",
)
AGE_BANDS: tuple[AgeBand, ...] = ("2-12", "13-17", "18-39", "40-64", "65+")
DURATIONS: tuple[Duration, ...] = ("hours", "days", "weeks")


@dataclass(frozen=True)
class PatientPlan:
    """One simulated patient, decided before the run starts."""

    index: int
    at_s: float  # arrival, seconds into the run
    department: str
    red_flag: bool
    symptoms: str  # health data of a made-up person: still never logged
    age_band: AgeBand
    duration: Duration
    patience_s: float  # gives up this long after joining unless assigned; inf: never
    messages: int  # sent by each side
    think_s: tuple[float, ...]  # the pause before each of the patient's messages
    reply_s: tuple[float, ...]  # the doctor's pause before each reply


def arrival_times(
    rate_at: Callable[[float], float],
    peak_per_min: float,
    duration_s: float,
    max_count: int,
    rng: random.Random,
) -> list[float]:
    """Arrival times (seconds) of a Poisson process whose rate (per minute) at `t` is
    `rate_at(t)`, never above `peak_per_min`: candidates at the peak rate, each kept with
    probability rate/peak (Lewis and Shedler's thinning). At most `max_count`."""
    times: list[float] = []
    if peak_per_min <= 0:
        return times
    peak_per_s = peak_per_min / 60.0
    t = 0.0
    while len(times) < max_count:
        t += rng.expovariate(peak_per_s)
        if t >= duration_s:
            break
        if rng.random() * peak_per_min < rate_at(t):
            times.append(t)
    return times


def weighted_choice(mix: tuple[tuple[str, float], ...], rng: random.Random) -> str:
    names = [name for name, _weight in mix]
    weights = [weight for _name, weight in mix]
    return rng.choices(names, weights)[0]


def think_times(mean_s: float, count: int, rng: random.Random) -> tuple[float, ...]:
    """Pauses spread evenly from half to one and a half times the mean."""
    return tuple(mean_s * rng.uniform(0.5, 1.5) for _ in range(count))


def plan_patients(
    scenario: Scenario, red_flags: Mapping[str, tuple[str, ...]], rng: random.Random
) -> list[PatientPlan]:
    """Every patient of the run. `red_flags` maps each department of the mix to its phrases
    (sorted, so that a seed picks the same one); a flagged intake carries one of them."""
    plans: list[PatientPlan] = []
    times = arrival_times(
        scenario.rate_at,
        scenario.peak_rate,
        scenario.duration_s,
        scenario.max_patients,
        rng,
    )
    for index, at_s in enumerate(times, start=1):
        department = weighted_choice(scenario.departments, rng)
        symptoms = rng.choice(ROUTINE_SYMPTOMS)
        phrases = red_flags.get(department, ())
        red_flag = bool(phrases) and rng.random() < scenario.red_flag_share
        if red_flag:
            symptoms = f"{symptoms}, and now {rng.choice(phrases)}"
        patience = (
            rng.expovariate(1.0 / scenario.patience_s) if scenario.patience_s > 0 else math.inf
        )
        messages = rng.randint(scenario.messages.low, scenario.messages.high)
        plans.append(
            PatientPlan(
                index=index,
                at_s=at_s,
                department=department,
                red_flag=red_flag,
                symptoms=symptoms,
                age_band=rng.choice(AGE_BANDS),
                duration=rng.choice(DURATIONS),
                patience_s=patience,
                messages=messages,
                think_s=think_times(scenario.think_s, messages, rng),
                reply_s=think_times(scenario.think_s, messages, rng),
            )
        )
    return plans
