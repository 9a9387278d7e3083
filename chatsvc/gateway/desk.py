"""The desk's rules for the triage engine, and its durability, built from the configuration."""

from __future__ import annotations

from chatsvc.config import Config, department_red_flags
from triage.durability import AckAfter, Durability
from triage.engine import DeskRules
from triage.models import DepartmentRules, HeadStarts, Routing

SECONDS_PER_DAY = 86400


def desk_rules(config: Config) -> DeskRules:
    triage = config.triage
    return DeskRules(
        departments=tuple(
            DepartmentRules(
                id=department.id,
                name=department.name,
                routing=Routing(department.routing),
                max_wait_s=department.max_wait_s,
                red_flags=department_red_flags(department),
            )
            for department in config.departments
        ),
        head_starts=HeadStarts(
            priority_s=triage.priority_head_start_s, urgent_s=triage.urgent_head_start_s
        ),
        accept_timeout_s=triage.accept_timeout_s,
        presence_ttl_s=triage.presence_ttl_s,
        patient_grace_s=triage.patient_grace_s,
        eta_window_s=triage.eta_window_s,
        mean_consult_s=triage.mean_consult_s,
        retention_s=config.redis.hot_retention_days * SECONDS_PER_DAY,
    )


def durability(config: Config) -> Durability:
    redis = config.redis
    return Durability(
        ack_after=AckAfter(redis.ack_after),
        replicas=redis.ack_replicas,
        wait_timeout_ms=redis.ack_timeout_ms,
    )
