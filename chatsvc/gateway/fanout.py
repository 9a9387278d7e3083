"""Transcript delivery to this process's connections, through Redis even with one gateway.

A message is stored by `transcript_append`, which also PUBLISHes a hint on the consultation's
channel. This gateway subscribes to the channels of the consultations its connections follow.
A hint (or a connection starting to follow) kicks a pump for that consultation, which reads the
transcript after the lowest cursor among its followers here and gives each connection, in seq
order, exactly the entries after its own cursor. So a lost or duplicated hint costs nothing but
a read: the transcript, not pub/sub, decides what is delivered. Typing, read-mark and
delivery-mark hints are ephemeral and only passed on.

Pumps for one consultation never overlap (a lock per consultation; a kick during a pump makes
it run once more), so every connection sees each seq once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterable

import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatsvc.gateway.cancellation import stop_if_cancelled
from chatsvc.gateway.hub import Conn, Hub
from chatsvc.gateway.redis_link import RedisLink
from chatsvc.protocol import frames as f
from triage import keys
from triage.transcripts import (
    DeliveredMark,
    Entry,
    NewMessage,
    Position,
    ReadMark,
    ResetRequired,
    TranscriptNotFound,
    Typing,
    parse_notice,
)

log = structlog.get_logger(__name__)

# Entries read per round trip while pumping: a resume of a long consultation is paged.
PUMP_PAGE = 500
# The listener blocks on its connection with no timer per read; instead it PINGs this often
# on the subscription connection and counts it deaf when nothing (not even the PONG) came back
# for DEAF_AFTER_S: a half-open connection is then replaced, never listened to forever.
PUBSUB_PING_S = 5.0
DEAF_AFTER_S = 15.0
# After a Redis error the listener waits this long before subscribing again.
RETRY_S = 0.5
# A pump that failed (Redis busy or away) tries again after this long.
PUMP_RETRY_S = 0.2
# Every followed consultation's position is checked this often: the bound on how late a
# message whose notification was lost (the last of a burst, or one published before the
# subscription existed) reaches its readers.
POSITION_CHECK_S = 2.0


def message_frame(consultation: str, epoch: str, entry: Entry) -> f.Message:
    return f.Message(
        consultation=consultation,
        epoch=epoch,
        entry=entry_view(entry),
    )


def entry_view(entry: Entry) -> f.MessageEntry:
    return f.MessageEntry(
        seq=entry.seq,
        sender=entry.sender,
        role=entry.role,  # type: ignore[arg-type]  # stored by transcript_open from our roles
        kind=entry.kind,
        text=entry.body,
        client_msg_id=entry.client_msg_id,
        ts=entry.ts_ms,
    )


class Fanout:
    def __init__(self, hub: Hub, link: RedisLink) -> None:
        self._hub = hub
        self._link = link
        self._pubsub: PubSub | None = None
        self._subscribed: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._again: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Per consultation: the last (epoch, seq) this gateway read and delivered.
        self._delivered: dict[str, Position] = {}

    # -- following ----------------------------------------------------------------------------

    async def follow(self, conn: Conn, consultation: str, epoch: str, seq: int) -> None:
        """Deliver the consultation's messages after `seq` to `conn`, then every new one."""
        if self._hub.follow(conn, consultation, epoch, seq):
            await self._subscribe(consultation)
        self.kick(consultation)

    async def unfollow(self, conn: Conn, consultation: str) -> None:
        if self._hub.unfollow(conn, consultation):
            await self._unsubscribe(consultation)

    async def forget(self, consultations: list[str]) -> None:
        """Nobody here follows these any more (a connection closed)."""
        for consultation in consultations:
            await self._unsubscribe(consultation)

    async def flush(self, consultation: str) -> None:
        """Deliver everything stored so far (before an `ended`, so it comes last)."""
        await self._pump(consultation)

    def kick(self, consultation: str) -> None:
        lock = self._locks.get(consultation)
        if lock is not None and lock.locked():
            self._again.add(consultation)
            return
        task = asyncio.get_running_loop().create_task(self._pump_quietly(consultation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the pump -----------------------------------------------------------------------------

    async def _pump_quietly(self, consultation: str) -> None:
        try:
            await self._pump(consultation)
        except (RedisError, OSError) as error:
            log.warning("pump_failed", consultation=consultation, error=str(error)[:200])
            # Try again soon rather than wait for the position check.
            await asyncio.sleep(PUMP_RETRY_S)
            if self._hub.followers(consultation):
                self.kick(consultation)

    async def _pump(self, consultation: str) -> None:
        lock = self._locks.setdefault(consultation, asyncio.Lock())
        async with lock:
            while True:
                self._again.discard(consultation)
                more = await self._pump_page(consultation)
                if not more and consultation not in self._again:
                    break
        if not lock.locked() and not self._hub.followers(consultation):
            self._locks.pop(consultation, None)
            self._delivered.pop(consultation, None)

    async def _pump_page(self, consultation: str) -> bool:
        """One read and its delivery; True if there may be more to read at once."""
        # A connection without room in its outbox waits (its writer kicks the pump again once
        # it drained); the others are served meanwhile, from the lowest of their positions.
        followers = frozenset(
            c for c in self._hub.followers(consultation) if self._ready(c, consultation)
        )
        if not followers:
            return False
        lowest = min(conn.follows[consultation].seq for conn in followers)
        transcripts = self._link.delivery_transcripts
        try:
            page = await transcripts.read(consultation, lowest, PUMP_PAGE)
        except TranscriptNotFound:
            return False
        except ResetRequired:
            # Someone's position is no longer held: reset them, then read again.
            return await self._reset_stale(consultation, followers)
        again = False
        for conn in followers:
            follow = conn.follows.get(consultation)
            if follow is None:
                continue
            if follow.epoch != page.epoch:
                again = await self._reset_stale(consultation, frozenset({conn}))
                continue
            for entry in page.entries:
                if entry.seq == follow.seq + 1:
                    if not conn.has_room_for_messages():
                        # Paced, not dropped: its writer pumps again once it has drained.
                        conn.on_room = self.kick
                        conn.waiting_room.add(consultation)
                        break
                    if not conn.send(message_frame(consultation, page.epoch, entry)):
                        break
                    follow.seq = entry.seq
        if page.entries:
            before = self._delivered.get(consultation)
            fresh = (
                page.entries
                if before is None or before.epoch != page.epoch
                else [e for e in page.entries if e.seq > before.seq]
            )
            if before is not None:  # a first read here is a resume or a follow, not delivery
                self._observe_delivery(fresh)
            self._delivered[consultation] = Position(page.epoch, page.entries[-1].seq)
        more = bool(page.entries) and page.entries[-1].seq < page.last_seq
        return again or more

    def _ready(self, conn: Conn, consultation: str) -> bool:
        if conn.has_room_for_messages():
            return True
        conn.on_room = self.kick
        conn.waiting_room.add(consultation)
        return False

    async def _reset_stale(self, consultation: str, conns: frozenset[Conn]) -> bool:
        """Tell each connection whose position cannot be served (another epoch, trimmed, past
        the end) so, with a `reset`, and deliver again from the first message still held."""
        span = await self._link.delivery_transcripts.span(consultation)
        if span is None:
            return False
        reset = False
        for conn in conns:
            follow = conn.follows.get(consultation)
            if follow is None or span.holds(follow.epoch, follow.seq):
                continue
            conn.send(
                f.Reset(
                    consultation=consultation,
                    epoch=span.epoch,
                    last_seq=span.last_seq,
                    reason="epoch_changed" if follow.epoch != span.epoch else "position_not_held",
                )
            )
            follow.epoch, follow.seq = span.epoch, span.first_seq - 1
            reset = True
        return reset

    # -- lost notifications ---------------------------------------------------------------------

    def deliver_notice(self, consultation: str, notice: NewMessage) -> bool:
        """The common case without a read: every follower here is ready and exactly at the
        entry's seq - 1 in its epoch, so the entry the hint carries is the next for all. No
        await in here, so no pump interleaves; a pump running meanwhile finds the cursors moved
        and skips what was given. False (nothing sent) when any follower is elsewhere."""
        entry = notice.entry
        assert entry is not None
        followers = self._hub.followers(consultation)
        if not followers or any(
            (f_ := conn.follows.get(consultation)) is None
            or f_.epoch != notice.epoch
            or f_.seq != notice.seq - 1
            or not conn.has_room_for_messages()
            for conn in followers
        ):
            return False
        frame = message_frame(consultation, notice.epoch, entry)
        for conn in followers:
            if conn.send(frame):
                conn.follows[consultation].seq = notice.seq
        self._delivered[consultation] = Position(notice.epoch, notice.seq)
        self._observe_delivery((entry,))
        return True

    def _observe_delivery(self, entries: Iterable[Entry]) -> None:
        """Delivery latency: from the desk storing each message (its clock) to now (ours)."""
        telemetry = self._hub.telemetry
        if telemetry is None:
            return
        now_ms = time.time() * 1000
        for entry in entries:
            telemetry.delivery.observe(max(0.0, now_ms - entry.ts_ms) / 1000)

    def notice(self, consultation: str, position: Position) -> None:
        """A hint: pump unless this gateway has delivered that far already."""
        delivered = self._delivered.get(consultation)
        if delivered is not None and delivered.epoch == position.epoch:
            if position.seq <= delivered.seq:
                return
        self.kick(consultation)

    async def check_positions(self) -> int:
        """Compare every followed transcript's position with what was delivered here and pump
        the ones behind: finds a lost last notification, or one published before the
        subscription started. Returns how many were behind."""
        followed = list(self._hub.followed())
        behind = 0
        positions = await self._link.delivery_transcripts.positions(followed)
        for consultation, position in positions.items():
            followers = self._hub.followers(consultation)
            if any(
                conn.follows[consultation].epoch != position.epoch
                or conn.follows[consultation].seq < position.seq
                for conn in followers
                if consultation in conn.follows
            ):
                behind += 1
                self.kick(consultation)
        return behind

    async def run_position_checks(self) -> None:
        while True:
            stop_if_cancelled()
            await asyncio.sleep(POSITION_CHECK_S)
            await self._link.wait_ready()
            try:
                behind = await self.check_positions()
            except (RedisError, OSError) as error:
                stop_if_cancelled()
                log.warning("position_check_failed", error=str(error)[:200])
                continue
            if behind:
                log.info("position_check_caught_up", consultations=behind)

    # -- pub/sub ------------------------------------------------------------------------------

    async def _subscribe(self, consultation: str) -> None:
        self._subscribed.add(consultation)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(keys.transcript_channel(consultation))

    async def _unsubscribe(self, consultation: str) -> None:
        if self._hub.followers(consultation):
            return  # someone here started following it again meanwhile
        self._subscribed.discard(consultation)
        lock = self._locks.get(consultation)
        if lock is None or not lock.locked():  # a running pump tidies up after itself
            self._locks.pop(consultation, None)
            self._delivered.pop(consultation, None)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(keys.transcript_channel(consultation))

    async def run(self) -> None:
        """Listen for hints until cancelled; after a Redis error (or a deaf subscription
        connection), subscribe again and pump every followed consultation (hints may have been
        missed meanwhile)."""
        while True:
            stop_if_cancelled()
            await self._link.wait_ready()
            # Subscription confirmations are wanted: each one kicks a pump (see _listen).
            pubsub = self._link.client.pubsub()
            try:
                # Subscribe to something first: redis-py's listener needs a subscription.
                await pubsub.subscribe(keys.transcript_channel("-"))
                self._pubsub = pubsub
                channels = [keys.transcript_channel(c) for c in self._subscribed]
                if channels:
                    await pubsub.subscribe(*channels)
                for consultation in list(self._hub.followed()):
                    self.kick(consultation)
                await self._listen_watched(pubsub)
            except (RedisError, OSError, _DeafSubscription) as error:
                stop_if_cancelled()
                log.warning("fanout_listener_lost", error=str(error)[:200] or type(error).__name__)
                await asyncio.sleep(RETRY_S)
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _listen_watched(self, pubsub: PubSub) -> None:
        """Listen while a watchdog PINGs; whichever stops first (an error, or deafness) ends
        both."""
        stop_if_cancelled()  # the subscribe calls above may have swallowed a cancellation
        loop = asyncio.get_running_loop()
        heard = [loop.time()]
        listener = loop.create_task(self._listen(pubsub, heard))
        watchdog = loop.create_task(self._watch(pubsub, heard))
        try:
            done, _ = await asyncio.wait({listener, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
        finally:
            for task in (listener, watchdog):
                task.cancel()
            await asyncio.gather(listener, watchdog, return_exceptions=True)

    async def _watch(self, pubsub: PubSub, heard: list[float]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            stop_if_cancelled()
            await asyncio.sleep(PUBSUB_PING_S)
            if loop.time() - heard[0] > DEAF_AFTER_S:
                raise _DeafSubscription(f"nothing heard for {DEAF_AFTER_S:.0f} s")
            await pubsub.ping()

    async def _listen(self, pubsub: PubSub, heard: list[float]) -> None:
        """Read the subscription connection's replies one by one. A hint (`message`) is
        handled here at once; anything else (subscribe and unsubscribe confirmations, PONGs)
        goes through redis-py's PubSub too, which keeps its own books on subscriptions.

        The connection is read directly rather than with `get_message`, whose layers (a
        health check, a retry wrapper, a dict per message) cost a gateway at saturation
        about a sixth of its CPU. It blocks with no timeout (a timer per read would cost
        more); the watchdog stands in for one."""
        loop = asyncio.get_running_loop()
        connection = pubsub.connection
        assert connection is not None  # subscribed before listening
        while True:
            stop_if_cancelled()
            reply = await connection.read_response(
                timeout=math.inf, disconnect_on_error=False, push_request=True
            )
            heard[0] = loop.time()
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                self._on_message(reply[1], reply[2])
                continue
            message = await pubsub.handle_message(reply)
            if message is not None and message.get("type") == "subscribe":
                # From now on no hint is missed: a pump now delivers whatever was published
                # before (the kick at follow may have read before the subscription existed).
                consultation = _consultation_of(message["channel"])
                if consultation and self._hub.followers(consultation):
                    self.kick(consultation)

    def _on_message(self, channel: str, data: str) -> None:
        consultation = _consultation_of(channel)
        notice = parse_notice(data) if consultation else None
        if isinstance(notice, NewMessage):
            if notice.entry is None or not self.deliver_notice(consultation, notice):
                self.notice(consultation, Position(notice.epoch, notice.seq))
        elif isinstance(notice, Typing):
            # The role was written by transcript scripts from our own roles.
            typing = f.TypingNotice(consultation=consultation, role=notice.role)  # type: ignore[arg-type]
            self._to_other_side(consultation, notice.role, typing)
        elif isinstance(notice, ReadMark | DeliveredMark):
            receipt = f.ReadReceipt if isinstance(notice, ReadMark) else f.DeliveryReceipt
            mark = receipt(consultation=consultation, role=notice.role, seq=notice.seq)  # type: ignore[arg-type]
            self._to_other_side(consultation, notice.role, mark)

    def _to_other_side(self, consultation: str, role: str, frame: f.Outbound) -> None:
        """An ephemeral notice (typing, a read or delivery mark) for the followers of the other
        role."""
        for conn in self._hub.followers(consultation):
            if conn.role.value != role:
                conn.send(frame)


class _DeafSubscription(Exception):
    """The subscription connection stopped answering (a half-open socket)."""


def _consultation_of(channel: str) -> str:
    """`chatsvc:{c:<id>}:notify` → `<id>`."""
    head = f"{keys.PREFIX}:{{c:"
    tail = "}:notify"
    if channel.startswith(head) and channel.endswith(tail):
        return channel[len(head) : -len(tail)]
    return ""
