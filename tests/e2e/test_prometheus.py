"""GET /metrics: Prometheus text that prometheus-client's own parser reads, with the documented
names, and values that follow what happened on the desk."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from chatsvc.protocol import frames as f
from tests.e2e.conftest import Desk

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"


def documented_names() -> set[str]:
    """The metric names in operations.md's Prometheus table (first column, `chatsvc_…`)."""
    section = OPERATIONS.read_text(encoding="utf-8").split("## Prometheus metrics", 1)[1]
    section = section.split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(chatsvc_[a-z_]+)`", section, flags=re.MULTILINE))


Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(desk: Desk) -> Samples:
    """Samples by name, as prometheus-client's parser reads them."""
    async with desk.gateway.session.get(desk.gateway.make_url("/metrics")) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = await answer.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    matching = [v for found, v in samples.get(name, []) if labels.items() <= found.items()]
    assert len(matching) == 1, f"{name} {labels}: {samples.get(name)}"
    return matching[0]


async def test_metrics_parse_and_follow_a_consultation(desk: Desk) -> None:
    doctor = await desk.doctor("d1", capacity=2)
    patient = await desk.patient("p1")
    await patient.join("general", "a sore throat")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    for n in range(3):
        await patient.send(case.id, f"patient {n}")
        await doctor.send(case.id, f"doctor {n}")
    await patient.wait_for_messages(case.id, 6)
    await doctor.wait_for_messages(case.id, 6)
    await patient.send_raw('{"type": "no-such-frame"}')
    await patient.next(f.Error)

    samples = await scrape(desk)
    names = set(samples) | {re.sub(r"_(bucket|count|sum|created)$", "", n) for n in samples}
    documented = documented_names()
    assert len(documented) >= 20
    assert documented <= names, f"documented but not exposed: {documented - names}"

    assert value(samples, "chatsvc_connections", role="patient") == 1
    assert value(samples, "chatsvc_connections", role="doctor") == 1
    assert value(samples, "chatsvc_frames_received_total", type="send") == 6
    assert value(samples, "chatsvc_frames_received_total", type="invalid") == 1
    # Each message goes to both sides (the sender's own connection too): 6 × 2.
    assert value(samples, "chatsvc_frames_sent_total", type="message") == 12
    assert value(samples, "chatsvc_frames_sent_total", type="ack") == 6
    assert value(samples, "chatsvc_errors_sent_total", code="bad_frame") == 1
    assert value(samples, "chatsvc_delivery_latency_seconds_count") == 6  # once per message
    assert value(samples, "chatsvc_redis_script_seconds_count", script="transcript_append") == 6
    assert value(samples, "chatsvc_desk_up") == 1
    assert value(samples, "chatsvc_desk_waiting", department="general") == 0
    assert value(samples, "chatsvc_desk_active_consultations", department="general") == 1
    assert value(samples, "chatsvc_desk_doctors", department="general", status="available") == 1
    assert value(samples, "chatsvc_desk_utilisation_ratio", department="general") == 0.5


def test_the_grafana_dashboard_uses_only_documented_series() -> None:
    dashboard = (OPERATIONS.parent / "grafana" / "chatsvc.json").read_text(encoding="utf-8")
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for name in re.findall(r"chatsvc_[a-z_]+", dashboard)
        if name not in ("chatsvc_desk",)
    }
    documented = {re.sub(r"_total$", "", name) for name in documented_names()}
    assert used and used <= documented, used - documented
