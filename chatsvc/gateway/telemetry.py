"""This gateway process's Prometheus metrics, served at `GET /metrics`.

Per process (each gateway is scraped on its own): open connections by role, frames received
and sent by type, errors sent by code, the delivery latency of messages (from the desk storing
a message to this gateway queueing it for a reader), and Redis script call latency. The desk
gauges (queues, waits, doctors, utilisation...) are the desk-wide figures of `triage.metrics`,
read from Redis at scrape time, so every gateway exposes the same values for them: sum or
average per-process series across gateways, but take any one gateway's desk gauges (`max` or
`avg` by department), never their sum.

Each application has its own registry (several gateways may run in one test process). Names
and labels are documented in docs/operations.md, "Prometheus metrics".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from triage.metrics import DeskMetrics

if TYPE_CHECKING:
    from chatsvc.gateway.hub import Hub

PREFIX = "chatsvc"
# The `type` of a received frame that could not be read (wrong kind, too large, not a frame).
INVALID_FRAME = "invalid"
# Messages reach readers in milliseconds; a backlog or a lost hint (the 2 s position check)
# shows in the upper buckets.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
REDIS_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5)


class Telemetry:
    """The instruments; cheap to call on every frame (children are cached per label)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.frames_received = Counter(
            f"{PREFIX}_frames_received",
            "Frames received from clients, by type (unparseable ones as 'invalid').",
            ["type"],
            registry=self.registry,
        )
        self.frames_sent = Counter(
            f"{PREFIX}_frames_sent",
            "Frames queued for clients, by type.",
            ["type"],
            registry=self.registry,
        )
        self.errors = Counter(
            f"{PREFIX}_errors_sent",
            "Error frames sent to clients, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.delivery = Histogram(
            f"{PREFIX}_delivery_latency_seconds",
            "From the desk storing a message to this gateway queueing it for a reader.",
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self.redis_calls = Histogram(
            f"{PREFIX}_redis_script_seconds",
            "Redis script calls from this gateway, by script, as the caller waited for them.",
            ["script"],
            buckets=REDIS_BUCKETS,
            registry=self.registry,
        )
        # Children per label value, looked up once: labels() takes a lock and builds a key.
        self._received: dict[str, Counter] = {}
        self._sent: dict[str, Counter] = {}
        self._scripts: dict[str, Histogram] = {}

    def received(self, frame_type: str) -> None:
        child = self._received.get(frame_type)
        if child is None:
            child = self._received[frame_type] = self.frames_received.labels(frame_type)
        child.inc()

    def sent(self, frame_type: str, error_code: str | None = None) -> None:
        child = self._sent.get(frame_type)
        if child is None:
            child = self._sent[frame_type] = self.frames_sent.labels(frame_type)
        child.inc()
        if error_code is not None:
            self.errors.labels(error_code).inc()

    def redis_call(self, script: str, seconds: float) -> None:
        child = self._scripts.get(script)
        if child is None:
            child = self._scripts[script] = self.redis_calls.labels(script)
        child.observe(seconds)

    def watch(self, hub: Hub) -> None:
        self.registry.register(_ConnectionsCollector(hub))


class _ConnectionsCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            f"{PREFIX}_connections",
            "Open authenticated WebSocket connections, by role.",
            labels=["role"],
        )
        counts = {"patient": 0, "doctor": 0, "supervisor": 0}
        for conn in self._hub.all_conns():
            counts[conn.role.value] = counts.get(conn.role.value, 0) + 1
        for role, count in sorted(counts.items()):
            family.add_metric([role], count)
        yield family


def desk_families(desk: DeskMetrics) -> Iterator[Metric]:
    """The desk-wide figures as gauges labelled by department."""

    def gauge(name: str, text: str, labels: tuple[str, ...] = ("department",)) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_desk_{name}", text, labels=list(labels))

    waiting = gauge("waiting", "Patients waiting in the queue.")
    longest = gauge("longest_wait_seconds", "How long the patient waiting longest has waited.")
    wait = gauge(
        "wait_seconds",
        "Wait percentiles of patients first matched in the window.",
        ("department", "quantile"),
    )
    abandonment = gauge("abandonment_ratio", "Abandoned / (abandoned + matched) in the window.")
    started = gauge("started_last_minute", "Consultations started in the last 60 s.")
    ended = gauge("ended_last_minute", "Consultations ended in the last 60 s.")
    abandoned = gauge("abandoned_last_minute", "Patients who left the queue in the last 60 s.")
    doctors = gauge("doctors", "Doctors on duty, by status.", ("department", "status"))
    utilisation = gauge("utilisation_ratio", "Slots held / slots of doctors on duty, not away.")
    active = gauge("active_consultations", "Consultations in progress.")
    eta_error = gauge("eta_abs_error_seconds", "Mean absolute error of first quoted waits.")
    surge = gauge("surge", "1 while the department is flagged in surge.")
    overdue = gauge("red_flags_overdue", "Red-flagged patients waiting past the alert time.")
    flagged_abandoned = gauge(
        "flagged_abandoned", "Urgent or red-flagged patients who left unserved in the window."
    )
    for d in desk.departments:
        name = [d.name]
        waiting.add_metric(name, d.waiting)
        longest.add_metric(name, d.longest_wait_ms / 1000)
        for quantile, value in (("0.5", d.wait_p50_ms), ("0.9", d.wait_p90_ms)):
            if value is not None:
                wait.add_metric([d.name, quantile], value / 1000)
        if d.abandonment_rate is not None:
            abandonment.add_metric(name, d.abandonment_rate)
        started.add_metric(name, d.started_last_minute)
        ended.add_metric(name, d.ended_last_minute)
        abandoned.add_metric(name, d.abandoned_last_minute)
        for status, count in (
            ("available", d.doctors_available),
            ("busy", d.doctors_busy),
            ("away", d.doctors_away),
        ):
            doctors.add_metric([d.name, status], count)
        if d.utilisation is not None:
            utilisation.add_metric(name, d.utilisation)
        active.add_metric(name, d.active_consultations)
        if d.eta_mean_abs_error_s is not None:
            eta_error.add_metric(name, d.eta_mean_abs_error_s)
        surge.add_metric(name, 1 if d.surge else 0)
        overdue.add_metric(name, d.red_flags_overdue)
        flagged_abandoned.add_metric(name, d.flagged_abandoned_in_window)
    messages = GaugeMetricFamily(
        f"{PREFIX}_desk_messages_per_second", "Messages stored desk-wide, over the last 10 s."
    )
    messages.add_metric([], desk.messages_per_s)
    yield from (
        waiting,
        longest,
        wait,
        abandonment,
        started,
        ended,
        abandoned,
        doctors,
        utilisation,
        active,
        eta_error,
        surge,
        overdue,
        flagged_abandoned,
        messages,
    )


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(telemetry: Telemetry, desk: DeskMetrics | None) -> bytes:
    """Prometheus text format: this process's series, then the desk's gauges (left out, with
    `chatsvc_desk_up 0`, when they could not be read)."""
    up = GaugeMetricFamily(f"{PREFIX}_desk_up", "1 when the desk gauges could be read.")
    up.add_metric([], 0 if desk is None else 1)
    families = [up, *(desk_families(desk) if desk is not None else ())]
    desk_registry = CollectorRegistry(auto_describe=False)
    desk_registry.register(_Fixed(families))
    return generate_latest(telemetry.registry) + generate_latest(desk_registry)
