"""Presence: which users are connected, per (user, gateway), under each gateway's lease.

A gateway holds a lease in Redis (`lease`, renewed well inside its ttl) and reports every
connection it opens and closes (`connect`, `disconnect`). A user is present while any of their
connections sits on a gateway whose lease is alive, so a tab closing on gateway A does not make
a doctor connected on gateway B absent, and a SIGKILLed gateway's users count as gone once its
lease lapses and any gateway `reap`s it. When a user's last live connection goes, their
absence starts, as crash-safe timers of the engine: a doctor's presence runs out after the
doctor grace (then their consultations are requeued at their places), a patient's open
consultation ends as patient_left after the patient grace, a waiting patient leaves the queue.
Coming back in time cancels all that. The events `doctor_away`, `doctor_back`, `patient_away`,
`patient_back` let gateways tell the other side.

After a Redis outage nobody could renew anything: a gateway that comes back asks for a hold
(`lease(..., hold_s=...)`) during which no timer fires and no lease is reaped, so live gateways
re-assert presence before anyone counts as gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from triage import keys
from triage.engine import DeskRules, ManualClock
from triage.errors import refusal
from triage.scripts import Scripts
from triage.views import OpenCase

_DESK_KEYS = (keys.desk_meta(),)
# Values per change in presence_update's reply.
_STRIDE = 7


@dataclass(frozen=True)
class Change:
    """A connection of `user` opened (delta 1) or closed (delta -1)."""

    user: str
    role: str
    delta: int


@dataclass(frozen=True)
class Counted:
    """What one change did."""

    live: int  # the user's live connections after it (before it, when refused)
    changed: bool  # the user came back (first live connection) or went (last one)
    refused: str = ""  # a refusal code ("too_many_connections"): nothing was counted
    # A patient's counted opening: their open ticket and consultation, read with the count.
    case: OpenCase | None = None


class Presence:
    def __init__(
        self,
        client: Redis,
        scripts: Scripts,
        rules: DeskRules,
        clock: ManualClock | None = None,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._rules = rules
        self._clock = clock

    def _now(self) -> str:
        return "" if self._clock is None else str(self._clock.now_ms)

    async def _run(self, script: str, *args: object) -> list[object]:
        reply = await self._scripts.run(script, _DESK_KEYS, (self._now(), *args), self._client)
        assert isinstance(reply, list)
        if reply and reply[0] == "err":
            raise refusal(str(reply[1]), str(reply[2]))
        return reply

    @property
    def _graces(self) -> tuple[int, int]:
        """(doctor grace, patient grace) in ms: a doctor's is the presence ttl."""
        return self._rules.presence_ttl_s * 1000, self._rules.patient_grace_s * 1000

    async def lease(self, gateway: str, ttl_s: float, hold_s: float = 0) -> int:
        """Renew the gateway's lease; returns its expiry (ms)."""
        reply = await self._run("presence_lease", gateway, int(ttl_s * 1000), int(hold_s * 1000))
        return int(str(reply[1]))

    async def hold(self, hold_s: float) -> None:
        """Hold timers and reaping for `hold_s` (never shortening a hold already set)."""
        await self._run("presence_lease", "", 0, int(hold_s * 1000))

    async def update(
        self, gateway: str, changes: Sequence[Change], max_connections: int = 0
    ) -> list[Counted]:
        """Count connections opened and closed, in order, in one script run: each is judged
        after the ones before it. An opening over `max_connections` live ones (0: no limit) is
        refused in its `Counted`, the others still counted."""
        if not changes:
            return []
        doctor_ms, patient_ms = self._graces
        args: list[object] = [gateway, doctor_ms, patient_ms, max_connections]
        for change in changes:
            args += [change.user, change.role, change.delta]
        reply = await self._run("presence_update", *args)
        results = []
        for change, at in zip(changes, range(1, len(reply), _STRIDE), strict=True):
            code, live, changed, ticket, state, department, consultation = (
                str(value) for value in reply[at : at + _STRIDE]
            )
            case = None
            if code == "ok" and change.delta > 0 and change.role == "patient":
                case = OpenCase(ticket, consultation, state, department)
            refused = "" if code == "ok" else code
            results.append(Counted(int(live), changed == "1", refused, case))
        return results

    async def connect(self, gateway: str, user: str, role: str, max_connections: int = 0) -> int:
        """Count a connection; returns the user's live connections. Raises TooManyConnections."""
        [counted] = await self.update(gateway, [Change(user, role, 1)], max_connections)
        if counted.refused:
            raise refusal(counted.refused, str(counted.live))
        return counted.live

    async def disconnect(self, gateway: str, user: str, role: str) -> int:
        """Count a closed connection; returns the user's live connections left."""
        [counted] = await self.update(gateway, [Change(user, role, -1)])
        return counted.live

    async def reassert(self, gateway: str, held: dict[tuple[str, str], int]) -> int:
        """Replace what Redis holds for the gateway with its (role, user) -> connections now.
        Starts and cancels nothing: those users stayed connected. Returns how many users."""
        args: list[object] = []
        for (role, user), count in sorted(held.items()):
            args += [role, user, count]
        reply = await self._run("presence_reassert", gateway, *args)
        return int(str(reply[1]))

    async def reap(self, limit: int = 20) -> tuple[str, ...]:
        """Forget gateways whose lease lapsed; returns their ids."""
        doctor_ms, patient_ms = self._graces
        reply = await self._run("presence_reap", doctor_ms, patient_ms, limit)
        return tuple(str(gateway) for gateway in reply[1:])

    async def connections(self, user: str) -> dict[str, int]:
        """Gateway id -> the user's open connections there (live lease or not)."""
        counts = await self._client.hgetall(keys.presence(user))
        return {gateway: int(n) for gateway, n in counts.items()}
