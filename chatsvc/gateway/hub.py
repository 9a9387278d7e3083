"""The connections this gateway process holds, who they belong to and what they follow.

A `Conn` is one authenticated WebSocket: its user, a bounded outbox drained by its own writer
task (so one slow reader never stalls delivery to anyone else: when its outbox is full it is
closed with 4009 and resumes later), and per consultation the last message seq it was given
(its cursor). The `Hub` indexes conns by user and by followed consultation. It does no Redis
I/O: fanout and the desk feed decide what to send, the hub only routes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from aiohttp import WSMsgType, web

from chatsvc.protocol.codec import Encoding, encode
from chatsvc.protocol.errors import CloseCode
from chatsvc.protocol.frames import Error, Outbound
from chatsvc.tokens import Claims, Role

if TYPE_CHECKING:
    from chatsvc.gateway.telemetry import Telemetry

log = structlog.get_logger(__name__)

# Frames a connection may have queued and unsent. A chat client reads far faster than a desk
# produces frames; one that falls this far behind is stuck, and resuming is cheaper than
# buffering for it without end.
OUTBOX_FRAMES = 1000
# How long one send may wait for the peer to take data before the peer counts as stuck.
SEND_TIMEOUT_S = 10.0
# How often the watchdog looks for such a send: a stuck peer is closed within
# SEND_TIMEOUT_S + this.
WATCHDOG_EVERY_S = 1.0
# A stuck peer gets this long to take the close frame before its TCP connection is shut.
STUCK_CLOSE_WAIT_S = 2.0
# Messages fill the outbox only up to this many frames short of its bound: the rest is kept
# for replies (acks, errors), so a reader catching up on a backlog is paced, not closed.
REPLY_ROOM = 100
# A connection left behind for want of room is pumped again once its outbox is this empty.
REFILL_AT = OUTBOX_FRAMES // 2


@dataclass
class Follow:
    """Where a connection stands in one consultation's transcript."""

    epoch: str
    seq: int  # the last message seq sent to (or known by) this connection


@dataclass(eq=False)
class Conn:
    id: str
    ws: web.WebSocketResponse
    encoding: Encoding
    claims: Claims
    lang: str = "en"
    follows: dict[str, Follow] = field(default_factory=dict)
    ticket: str = ""  # a patient's waiting ticket, for position updates
    ticket_department: str = ""
    last_queued: tuple[int, int | None, bool] | None = None  # what the patient was last told
    closing: bool = False
    counted: bool = False  # its presence is recorded in Redis (so it is restated and removed)
    # Consultations this connection follows and was allowed to write into: later writes skip the
    # access check's read (dropped when it stops following: transfer, requeue, end).
    writable: set[str] = field(default_factory=set)
    # Consultations whose messages wait for room in the outbox, and who to tell when there is.
    waiting_room: set[str] = field(default_factory=set)
    on_room: Callable[[str], None] | None = None
    # When the writer's current send started (loop time), None between sends: the watchdog's
    # measure of a peer that takes nothing.
    sending_since: float | None = None
    telemetry: Telemetry | None = None  # set by the hub: frames sent are counted
    transport: asyncio.BaseTransport | None = None  # the TCP connection, to drop a stuck peer
    # Encoded frames (text frames on a JSON connection, binary on msgpack), None to stop.
    outbox: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(OUTBOX_FRAMES)
    )

    @property
    def user_id(self) -> str:
        return self.claims.user_id

    @property
    def role(self) -> Role:
        return self.claims.role

    def has_room_for_messages(self) -> bool:
        return self.outbox.qsize() < OUTBOX_FRAMES - REPLY_ROOM

    def send(self, frame: Outbound) -> bool:
        """Queue a frame; False (and the connection is being closed) when the outbox is full."""
        if self.closing:
            return False
        if self.telemetry is not None:
            self.telemetry.sent(
                frame.__struct_config__.tag,  # type: ignore[arg-type]
                frame.code.value if isinstance(frame, Error) else None,
            )
        payload = encode(frame, self.encoding)
        try:
            self.outbox.put_nowait(payload)
        except asyncio.QueueFull:
            self.closing = True
            log.warning("ws_too_slow", conn_id=self.id, queued=self.outbox.qsize())
            asyncio.get_running_loop().create_task(
                self.ws.close(code=CloseCode.TOO_SLOW, message=b"too slow: resume")
            )
            return False
        return True

    async def write_loop(self) -> None:
        """Drain the outbox onto the socket, in order, until told to stop (None).

        No timer per frame: a send only waits when the peer's TCP window is full, and the
        hub's watchdog (`Hub.close_stuck`) closes a connection whose send has waited longer
        than SEND_TIMEOUT_S."""
        outbox = self.outbox
        loop = asyncio.get_running_loop()
        # The encoded bytes as they are: send_str would decode and encode the text again.
        opcode = WSMsgType.TEXT if self.encoding is Encoding.JSON else WSMsgType.BINARY
        while (payload := await outbox.get()) is not None:
            if self.ws.closed:
                return
            if self.waiting_room and outbox.qsize() <= REFILL_AT and self.on_room:
                waiting, self.waiting_room = self.waiting_room, set()
                for consultation in waiting:
                    self.on_room(consultation)
            self.sending_since = loop.time()
            try:
                await self.ws.send_frame(payload, opcode)
            except (ConnectionError, RuntimeError):
                self.closing = True  # nothing more is queued for a socket that is gone
                return  # the handler notices and cleans up
            finally:
                self.sending_since = None

    def close_if_stuck(self, now: float) -> bool:
        """Close with 4009 if a send has waited more than SEND_TIMEOUT_S (the peer takes
        nothing): it resumes, rather than stay connected and silently miss frames."""
        if self.sending_since is None or now - self.sending_since < SEND_TIMEOUT_S:
            return False
        if self.closing:
            return False
        self.closing = True
        log.warning("ws_stuck", conn_id=self.id, waited_s=round(now - self.sending_since, 1))
        task = asyncio.get_running_loop().create_task(self._close_stuck())
        _closing_tasks.add(task)  # held until done: a task nobody holds may be collected
        task.add_done_callback(_closing_tasks.discard)
        return True

    async def _close_stuck(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(
                self.ws.close(code=CloseCode.TOO_SLOW, message=b"too slow: resume"),
                STUCK_CLOSE_WAIT_S,
            )
        # A peer that does not take even the close frame would keep the socket (and its
        # unsent buffer) open however it is closed: drop the TCP connection under it (after a
        # finished close this does nothing).
        if self.transport is not None:
            self.transport.abort()

    def stop_writer(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(None)


# Closes of stuck connections under way (see Conn.close_if_stuck).
_closing_tasks: set[asyncio.Task[None]] = set()


class Hub:
    def __init__(self) -> None:
        self.telemetry: Telemetry | None = None
        self._by_user: dict[str, set[Conn]] = {}
        self._followers: dict[str, set[Conn]] = {}

    def add(self, conn: Conn) -> None:
        conn.telemetry = self.telemetry
        self._by_user.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: Conn) -> list[str]:
        """Forget the connection; returns the consultations nobody here follows any more."""
        users = self._by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self._by_user[conn.user_id]
        orphaned = []
        for consultation in conn.follows:
            followers = self._followers.get(consultation)
            if followers is not None:
                followers.discard(conn)
                if not followers:
                    del self._followers[consultation]
                    orphaned.append(consultation)
        conn.follows.clear()
        conn.writable.clear()
        return orphaned

    def conns_of(self, user_id: str) -> frozenset[Conn]:
        return frozenset(self._by_user.get(user_id, ()))

    def close_stuck(self, now: float) -> int:
        """Close every connection whose writer has waited on a send past SEND_TIMEOUT_S."""
        return sum(conn.close_if_stuck(now) for conn in list(self.all_conns()))

    async def run_watchdog(self) -> None:
        """Look for stuck writers once a second, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCHDOG_EVERY_S)
            self.close_stuck(loop.time())

    def all_conns(self) -> Iterable[Conn]:
        for conns in self._by_user.values():
            yield from conns

    def follow(self, conn: Conn, consultation: str, epoch: str, seq: int) -> bool:
        """Start following at (epoch, seq); False if the connection already follows it."""
        if consultation in conn.follows:
            return False
        conn.follows[consultation] = Follow(epoch, seq)
        self._followers.setdefault(consultation, set()).add(conn)
        return True

    def unfollow(self, conn: Conn, consultation: str) -> bool:
        """Stop; True when nobody here follows the consultation any more."""
        conn.follows.pop(consultation, None)
        conn.writable.discard(consultation)
        followers = self._followers.get(consultation)
        if followers is None:
            return False
        followers.discard(conn)
        if followers:
            return False
        del self._followers[consultation]
        return True

    def followers(self, consultation: str) -> frozenset[Conn]:
        return frozenset(self._followers.get(consultation, ()))

    def followed(self) -> Iterable[str]:
        return self._followers.keys()

    def __len__(self) -> int:
        return sum(len(conns) for conns in self._by_user.values())
