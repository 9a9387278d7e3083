"""The simulator's pure parts: scenario flags, profile files and the seeded arrival plan."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chatsvc.config import Config, department_red_flags
from chatsvc.simulate.arrivals import ROUTINE_SYMPTOMS, arrival_times, plan_patients
from chatsvc.simulate.scenario import (
    IntRange,
    Profile,
    Scenario,
    ScenarioError,
    load_profile,
    parse_mix,
    parse_profile_csv,
    parse_profile_toml,
    parse_range,
)
from triage.redflags import DEFAULT_RED_FLAGS, RedFlagMatcher

RED_FLAGS = {d.id: tuple(sorted(department_red_flags(d))) for d in Config().departments}


def test_department_mix_reads_names_and_weights() -> None:
    assert parse_mix("general=0.7, psych=0.3") == (("general", 0.7), ("psych", 0.3))
    assert parse_mix("general") == (("general", 1.0),)


@pytest.mark.parametrize("text", ["", "general=x", "general=0", "general=-1", "a=1,a=2", "=1"])
def test_a_malformed_department_mix_is_refused(text: str) -> None:
    with pytest.raises(ScenarioError):
        parse_mix(text)


def test_message_counts_are_one_number_or_a_range() -> None:
    assert parse_range("3") == IntRange(3, 3)
    assert parse_range("2-5") == IntRange(2, 5)
    with pytest.raises(ScenarioError):
        parse_range("two")
    with pytest.raises(ScenarioError):
        Scenario(messages=IntRange(5, 2))


@pytest.mark.parametrize(
    "change",
    [
        {"duration_s": 0},
        {"duration_s": 3601},
        {"max_patients": 0},
        {"red_flag_share": 1.5},
        {"capacity": 0},
        {"drain_s": -1},
        {"patience_s": -1},
    ],
)
def test_out_of_range_parameters_are_refused(change: dict[str, float]) -> None:
    with pytest.raises(ScenarioError):
        Scenario(**change)  # type: ignore[arg-type]


def test_a_profile_is_linear_between_points_and_flat_outside() -> None:
    profile = Profile(minutes=(1.0, 3.0), rates=(10.0, 50.0))
    assert profile.rate_at(0) == 10.0
    assert profile.rate_at(60) == 10.0
    assert profile.rate_at(120) == pytest.approx(30.0)
    assert profile.rate_at(180) == 50.0
    assert profile.rate_at(600) == 50.0
    assert profile.peak == 50.0


def test_toml_and_csv_profiles_read_the_same_points(tmp_path: Path) -> None:
    toml = tmp_path / "surge.toml"
    toml.write_text("# an epidemic surge\npoints = [[0, 5], [1, 60], [2.5, 20]]\n")
    csv = tmp_path / "surge.csv"
    csv.write_text("minute,rate\n0,5\n1,60\n# the tail\n2.5,20\n")
    expected = Profile(minutes=(0.0, 1.0, 2.5), rates=(5.0, 60.0, 20.0))
    assert load_profile(toml) == expected
    assert load_profile(csv) == expected


@pytest.mark.parametrize(
    "text",
    [
        "points = []",
        "points = [[0, 5], [0, 6]]",  # minutes must increase
        "points = [[0, -1], [1, 5]]",
        "points = [[0, 0]]",  # nobody ever arrives
        "points = [[0, 'x']]",
        "points = 3",
        "points = [[",
    ],
)
def test_a_malformed_toml_profile_is_refused(text: str) -> None:
    with pytest.raises(ScenarioError):
        parse_profile_toml(text)


def test_a_malformed_csv_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError):
        parse_profile_csv("0,5,7\n")
    with pytest.raises(ScenarioError):
        load_profile(tmp_path / "missing.csv")


def test_poisson_arrivals_are_reproducible_and_near_the_rate() -> None:
    first = arrival_times(lambda _t: 60.0, 60.0, 3600, 100_000, random.Random(5))
    again = arrival_times(lambda _t: 60.0, 60.0, 3600, 100_000, random.Random(5))
    assert first == again
    assert first == sorted(first) and 0 < first[0] and first[-1] < 3600
    assert 3400 < len(first) < 3800  # 3600 expected; the standard deviation is 60


def test_arrivals_stop_at_the_count_and_need_a_positive_rate() -> None:
    assert len(arrival_times(lambda _t: 600.0, 600.0, 3600, 25, random.Random(1))) == 25
    assert arrival_times(lambda _t: 0.0, 0.0, 3600, 25, random.Random(1)) == []


def test_a_profile_shapes_the_arrivals_by_thinning() -> None:
    profile = Profile(minutes=(0.0, 10.0, 10.01, 20.0), rates=(0.0, 0.0, 120.0, 120.0))
    times = arrival_times(profile.rate_at, profile.peak, 1200, 100_000, random.Random(2))
    assert all(t >= 600 for t in times)  # nobody in the first ten minutes
    assert 1100 < len(times) < 1300  # ten minutes at 120 a minute


def test_a_seed_gives_one_plan() -> None:
    scenario = Scenario(
        duration_s=600,
        rate_per_min=30,
        departments=(("general", 0.7), ("psych", 0.3)),
        red_flag_share=0.3,
    )
    plan = plan_patients(scenario, RED_FLAGS, random.Random(11))
    assert plan == plan_patients(scenario, RED_FLAGS, random.Random(11))
    assert plan != plan_patients(scenario, RED_FLAGS, random.Random(12))
    assert [p.index for p in plan] == list(range(1, len(plan) + 1))
    departments = [p.department for p in plan]
    assert 0.6 < departments.count("general") / len(plan) < 0.8
    assert 0.2 < sum(p.red_flag for p in plan) / len(plan) < 0.4
    assert all(scenario.messages.low <= p.messages <= scenario.messages.high for p in plan)
    assert all(len(p.think_s) == len(p.reply_s) == p.messages for p in plan)


def test_exactly_the_planned_intakes_raise_a_red_flag() -> None:
    scenario = Scenario(
        duration_s=600,
        rate_per_min=60,
        departments=(("general", 1), ("paediatrics", 1), ("psych", 1)),
        red_flag_share=0.5,
    )
    matchers = {d.id: RedFlagMatcher(department_red_flags(d)) for d in Config().departments}
    for patient in plan_patients(scenario, RED_FLAGS, random.Random(3)):
        hit = matchers[patient.department].highest(patient.symptoms)
        assert (hit is not None) == patient.red_flag


@pytest.mark.parametrize("kind", sorted(DEFAULT_RED_FLAGS))
def test_routine_intakes_raise_no_flag_in_any_shipped_list(kind: str) -> None:
    matcher = RedFlagMatcher(DEFAULT_RED_FLAGS[kind])
    assert [s for s in ROUTINE_SYMPTOMS if matcher.highest(s)] == []


def test_patience_zero_means_a_patient_never_gives_up() -> None:
    scenario = Scenario(duration_s=120, rate_per_min=30, patience_s=0)
    assert all(p.patience_s == float("inf") for p in plan_patients(scenario, {}, random.Random(1)))
