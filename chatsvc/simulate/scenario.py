"""A simulated surge's parameters: what `chatsvc simulate` is asked to play, checked once.

Owns the `Scenario` (every knob of a run), the parsing of the command line's compact forms
(`general=0.7,psych=0.3`, `2-5`) and of arrival profile files (TOML or CSV points of minute and
arrivals per minute, interpolated). Pure: no sockets, no clock, no randomness; a bad value raises
`ScenarioError` naming it.
"""

from __future__ import annotations

import bisect
import csv
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

# A run is a rehearsal, not a load generator left running: an hour is the longest.
MAX_DURATION_S = 3600.0
# Open consultations get at most this long to finish after the arrivals stop.
MAX_DRAIN_S = 600.0
# More sockets than this from one process would hit file-descriptor limits before the service.
MAX_PATIENTS = 20_000
# tokens.MAX_CAPACITY: a doctor's token may not carry more.
MAX_CAPACITY = 50
MAX_DOCTORS = 500
# A profile with more points than this is a data file, not a surge shape.
MAX_PROFILE_POINTS = 10_000


class ScenarioError(ValueError):
    """A parameter or a profile file is malformed or out of range; the message names it."""


@dataclass(frozen=True)
class Profile:
    """Arrivals per minute over time: points (minute, rate), linear between them, the first
    rate before the first point and the last rate after the last."""

    minutes: tuple[float, ...]
    rates: tuple[float, ...]

    def rate_at(self, t_s: float) -> float:
        """Arrivals per minute at `t_s` seconds into the run."""
        minute = t_s / 60.0
        i = bisect.bisect_right(self.minutes, minute)
        if i == 0:
            return self.rates[0]
        if i == len(self.minutes):
            return self.rates[-1]
        m0, m1 = self.minutes[i - 1], self.minutes[i]
        r0, r1 = self.rates[i - 1], self.rates[i]
        return r0 + (r1 - r0) * (minute - m0) / (m1 - m0)

    @property
    def peak(self) -> float:
        return max(self.rates)


@dataclass(frozen=True)
class IntRange:
    """Whole numbers drawn uniformly from `low` to `high`, both included."""

    low: int
    high: int


@dataclass(frozen=True)
class Scenario:
    """Everything a run plays. Times are seconds; rates are per minute."""

    url: str = "http://127.0.0.1:8080"
    duration_s: float = 60.0
    max_patients: int = 1000
    rate_per_min: float = 30.0
    profile: Profile | None = None  # when set, it replaces rate_per_min
    departments: tuple[tuple[str, float], ...] = (("general", 1.0),)
    red_flag_share: float = 0.05
    doctors: int = 4
    capacity: int = 2
    response_s: float = 2.0  # a doctor's mean pause before taking the next patient
    messages: IntRange = IntRange(2, 4)  # messages each way in one consultation
    think_s: float = 1.0  # mean pause before each message
    patience_s: float = 60.0  # mean patience of a waiting patient (exponential); 0: endless
    drain_s: float = 30.0
    seed: int = 1

    def __post_init__(self) -> None:
        _check(0 < self.duration_s <= MAX_DURATION_S, f"--duration: 0 < s <= {MAX_DURATION_S:g}")
        _check(1 <= self.max_patients <= MAX_PATIENTS, f"--max-patients: 1..{MAX_PATIENTS}")
        _check(self.rate_per_min >= 0, "--rate must not be negative")
        _check(bool(self.departments), "--departments names no department")
        _check(0 <= self.red_flag_share <= 1, "--red-flags: a share from 0 to 1")
        _check(0 <= self.doctors <= MAX_DOCTORS, f"--doctors: 0..{MAX_DOCTORS}")
        _check(1 <= self.capacity <= MAX_CAPACITY, f"--capacity: 1..{MAX_CAPACITY}")
        _check(self.response_s >= 0, "--response must not be negative")
        _check(1 <= self.messages.low <= self.messages.high <= 100, "--messages: 1..100")
        _check(self.think_s >= 0, "--think must not be negative")
        _check(self.patience_s >= 0, "--patience must not be negative")
        _check(0 <= self.drain_s <= MAX_DRAIN_S, f"--drain: 0..{MAX_DRAIN_S:g}")

    def rate_at(self, t_s: float) -> float:
        """Arrivals per minute at `t_s` seconds into the run."""
        return self.profile.rate_at(t_s) if self.profile else self.rate_per_min

    @property
    def peak_rate(self) -> float:
        return self.profile.peak if self.profile else self.rate_per_min

    @property
    def department_ids(self) -> tuple[str, ...]:
        return tuple(department for department, _weight in self.departments)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """`general=0.7,psych=0.3` (weights need not sum to 1; `general` alone is weight 1)."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight_text = part.partition("=")
        name = name.strip()
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ScenarioError(f"--departments: {part!r} is not name=weight") from None
        if not name or weight <= 0 or name in mix:
            raise ScenarioError(f"--departments: {part!r}: a new name and a positive weight")
        mix[name] = weight
    if not mix:
        raise ScenarioError("--departments names no department")
    return tuple(mix.items())


def parse_range(text: str) -> IntRange:
    """`3` or `2-5`."""
    low, _, high = text.partition("-")
    try:
        return IntRange(int(low), int(high or low))
    except ValueError:
        raise ScenarioError(f"{text!r} is not N or MIN-MAX") from None


def load_profile(path: Path) -> Profile:
    """Read a profile file: `.toml` with `points = [[minute, rate], ...]`, else CSV lines
    `minute,rate` (a first line that is not numbers is a header)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"--profile: {error}") from None
    if path.suffix.lower() == ".toml":
        return parse_profile_toml(text)
    return parse_profile_csv(text)


def parse_profile_toml(text: str) -> Profile:
    try:
        points = tomllib.loads(text).get("points")
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"--profile: {error}") from None
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
        raise ScenarioError("--profile: `points` must be a list of [minute, rate] pairs")
    return _profile(points)


def parse_profile_csv(text: str) -> Profile:
    rows = [row for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]
    rows = [row for row in rows if not row[0].lstrip().startswith("#")]
    if rows and not _numeric(rows[0][0]):
        rows = rows[1:]  # a header
    if not all(len(row) == 2 for row in rows):
        raise ScenarioError("--profile: each CSV line must be minute,rate")
    return _profile([[cell.strip() for cell in row] for row in rows])


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _profile(points: list[list[object]]) -> Profile:
    if not 1 <= len(points) <= MAX_PROFILE_POINTS:
        raise ScenarioError(f"--profile: 1..{MAX_PROFILE_POINTS} points")
    try:
        pairs = [(float(str(minute)), float(str(rate))) for minute, rate in points]
    except ValueError:
        raise ScenarioError("--profile: minutes and rates must be numbers") from None
    minutes = tuple(minute for minute, _rate in pairs)
    rates = tuple(rate for _minute, rate in pairs)
    if any(b <= a for a, b in zip(minutes, minutes[1:], strict=False)) or minutes[0] < 0:
        raise ScenarioError("--profile: minutes must start at 0 or later and increase")
    if any(rate < 0 for rate in rates) or max(rates) <= 0:
        raise ScenarioError("--profile: rates must not be negative, and one must be positive")
    return Profile(minutes, rates)
