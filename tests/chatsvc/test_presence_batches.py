"""The gateway counts connections in batches: the changes waiting when the flusher runs go to
Redis in one presence_update run, in the order they came, each with its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web

from chatsvc.config import Config, LimitsConfig
from chatsvc.gateway.hub import Conn
from chatsvc.gateway.keys import CONTEXT
from chatsvc.gateway.presence import GatewayPresence
from chatsvc.protocol.codec import Encoding
from chatsvc.tokens import Claims, Role
from tests.conftest import GatewayFactory
from triage.errors import TooManyConnections
from triage.presence import Change, Presence
from triage.views import OpenCase


def conn(user: str, role: Role = Role.PATIENT) -> Conn:
    claims = Claims(role=role, user_id=user, expires_at=2_000_000_000)
    return Conn(f"c-{user}", web.WebSocketResponse(), Encoding.JSON, claims)


@pytest.fixture
async def presence(make_gateway: GatewayFactory) -> GatewayPresence:
    limits = LimitsConfig(max_connections_per_user=2)
    client = await make_gateway(Config(limits=limits))
    return client.app[CONTEXT].presence


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, int]]]:
    """The (user, delta) changes of every presence_update run, in order."""
    seen: list[list[tuple[str, int]]] = []
    original = Presence.update

    async def recording(self: Presence, gateway: str, changes: Sequence[Change], *a: Any) -> Any:
        seen.append([(change.user, change.delta) for change in changes])
        return await original(self, gateway, changes, *a)

    monkeypatch.setattr(Presence, "update", recording)
    return seen


async def test_connects_of_one_moment_are_counted_in_one_run_each_with_its_answer(
    presence: GatewayPresence, runs: list[list[tuple[str, int]]]
) -> None:
    tabs = [conn("p1"), conn("p2"), conn("p1"), conn("p1"), conn("d1", Role.DOCTOR)]
    answers = await asyncio.gather(*(presence.connect(tab) for tab in tabs), return_exceptions=True)
    assert runs[-1] == [("p1", 1), ("p2", 1), ("p1", 1), ("p1", 1), ("d1", 1)]
    assert answers[:3] == [OpenCase("", "")] * 3  # patients with nothing open
    assert isinstance(answers[3], TooManyConnections)  # the third tab of p1, limit 2
    assert answers[4] is None  # staff: no case
    assert [tab.counted for tab in tabs] == [True, True, True, False, True]


async def test_a_close_made_with_its_own_opening_waits_for_the_next_run(
    presence: GatewayPresence, runs: list[list[tuple[str, int]]]
) -> None:
    tab = conn("p1")
    opened = asyncio.ensure_future(presence.connect(tab))
    closed = asyncio.ensure_future(presence.disconnect(tab))
    await asyncio.gather(opened, closed)
    assert runs[-2:] == [[("p1", 1)], [("p1", -1)]]
    assert not tab.counted


async def test_closing_a_connection_that_was_never_counted_sends_nothing(
    presence: GatewayPresence, runs: list[list[tuple[str, int]]]
) -> None:
    before = len(runs)
    await presence.disconnect(conn("p9"))
    assert len(runs) == before


async def test_connects_that_come_while_a_batch_is_counted_wait_a_moment_for_more(
    presence: GatewayPresence, runs: list[list[tuple[str, int]]]
) -> None:
    first = asyncio.ensure_future(presence.connect(conn("p1")))
    await asyncio.sleep(0)  # the flusher has taken p1's batch: it is being counted
    during = asyncio.ensure_future(presence.connect(conn("p2")))
    await first
    # p1's run is done; p2 waits up to SURGE_WAIT_S for company: a connect now joins it.
    late = asyncio.ensure_future(presence.connect(conn("p3")))
    await asyncio.gather(during, late)
    assert runs[-2:] == [[("p1", 1)], [("p2", 1), ("p3", 1)]]
