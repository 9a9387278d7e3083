"""The WebSocket endpoint `/ws`: the only code that awaits a client socket.

The handshake checks `Origin` (a browser page from another site must not drive a user's
session: cross-site WebSocket hijacking). Then frames go through the codec and the sans-I/O
`Session`; its effects are carried out here: replies queued on the connection's outbox, the
welcome and the user's current state after `hello`, commands run one at a time in the order
they came (so two sends are stored in the order they were sent), and the close at token expiry.
Logs carry the connection id, role and sizes, never frame contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from urllib.parse import urlsplit

import structlog
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from chatsvc import tokens
from chatsvc.gateway.commands import Commands
from chatsvc.gateway.context import GatewayContext
from chatsvc.gateway.hub import SEND_TIMEOUT_S, Conn
from chatsvc.gateway.keys import COMMANDS, CONNECTIONS, CONTEXT, SETTINGS
from chatsvc.gateway.telemetry import INVALID_FRAME, Telemetry
from chatsvc.protocol import frames as f
from chatsvc.protocol.access import Action
from chatsvc.protocol.codec import SUBPROTOCOLS, Encoding, decode, encode
from chatsvc.protocol.errors import CloseCode, ErrorCode, ProtocolError
from chatsvc.protocol.session import (
    Authenticated,
    Close,
    Dispatch,
    Effect,
    Limits,
    Reply,
    Session,
    State,
)
from chatsvc.tokens import Role
from triage import views
from triage.errors import Refused, TooManyConnections

log = structlog.get_logger(__name__)
# The level is checked on the stdlib logger before a line is built: a line that would be dropped
# (the debug lines of every handshake) costs a check, not structlog's processors.
_level = logging.getLogger(__name__)

# A socket that has not authenticated by then is a scanner or a broken client: drop it.
HELLO_TIMEOUT_S = 10.0
# WebSocket ping interval: finds dead peers behind NATs and proxies that drop idle TCP.
HEARTBEAT_S = 20.0
# Frames up to this multiple of max_frame_bytes get a frame_too_large error and the socket
# keeps serving; beyond it aiohttp closes with 1009 before buffering more.
HARD_FRAME_LIMIT_FACTOR = 4
# No permessage-deflate: frames are a few hundred bytes, and a browser that offers it would give
# each connection a zlib compressor (~256 KiB of state at the default window, ten times an idle
# connection's whole budget) and a decompressor, for next to no saving.
COMPRESS = False


def origin_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """No Origin (not a browser), the gateway's own host, or a configured origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    connections = request.app[CONNECTIONS]
    config = settings.config
    limits = config.limits
    if not origin_allowed(request, config.server.allowed_origins):
        log.info("ws_origin_refused")
        raise web.HTTPForbidden(text="origin not allowed")
    if len(connections) >= limits.max_connections:
        raise web.HTTPServiceUnavailable(text="connection limit reached")
    ws = web.WebSocketResponse(
        protocols=SUBPROTOCOLS,
        heartbeat=HEARTBEAT_S,
        max_msg_size=limits.max_frame_bytes * HARD_FRAME_LIMIT_FACTOR,
        compress=COMPRESS,
    )
    await ws.prepare(request)
    encoding = Encoding(ws.ws_protocol) if ws.ws_protocol else Encoding.JSON
    # An id for logs, not a secret: no system call for randomness per connect (uuid4's). The
    # random module is reseeded in each forked worker.
    conn_id = f"{random.getrandbits(48):012x}"
    session = Session(
        verify_token=functools.partial(tokens.verify, settings.verify_secrets),
        limits=Limits(
            frames_per_second=limits.frames_per_second,
            burst=limits.frame_burst,
            max_violations=limits.max_violations_per_minute,
        ),
    )
    connections.add(ws)
    socket = Socket(
        request.app[CONTEXT],
        request.app[COMMANDS],
        ws,
        session,
        encoding,
        conn_id,
        request.transport,
    )
    # One info line per connection, `ws_closed`, at its end: at a thousand connects a second,
    # a line at each step of the handshake cost more CPU than the handshake's own work.
    socket.log(logging.DEBUG, "ws_open")
    opened = time.monotonic()
    try:
        await socket.serve(limits.max_frame_bytes)
    finally:
        connections.discard(ws)
        await socket.detach()
        role = session.claims.role.value if session.claims else None
        code = None if ws.close_code is None else int(ws.close_code)
        duration_s = round(time.monotonic() - opened, 1)
        socket.log(logging.INFO, "ws_closed", role=role, close_code=code, duration_s=duration_s)
    return ws


class Socket:
    """One client socket from its first frame to its close."""

    def __init__(
        self,
        ctx: GatewayContext,
        commands: Commands,
        ws: web.WebSocketResponse,
        session: Session,
        encoding: Encoding,
        conn_id: str,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self._transport = transport
        self._ctx = ctx
        self._commands = commands
        self._ws = ws
        self._session = session
        self._encoding = encoding
        self._conn_id = conn_id
        self.conn: Conn | None = None
        self._writer: asyncio.Task[None] | None = None

    def log(self, level: int, event: str, **fields: object) -> None:
        """One line about this connection, with its id and encoding."""
        if _level.isEnabledFor(level):
            encoding = self._encoding.name.lower()
            log.log(level, event, conn_id=self._conn_id, encoding=encoding, **fields)

    async def serve(self, max_frame_bytes: int) -> None:
        ws, session = self._ws, self._session
        while not ws.closed:
            try:
                message = await ws.receive(timeout=self._receive_timeout())
            except TimeoutError:
                if session.state is State.AWAITING_HELLO:
                    await ws.close(code=CloseCode.AUTH_TIMEOUT, message=b"no hello in time")
                    return
                if not await self._carry_out(session.tick(time.time())):
                    return
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if message.type is WSMsgType.ERROR:
                self.log(logging.INFO, "ws_error", error=type(ws.exception()).__name__)
                return
            effects = _effects_for(
                message.type,
                message.data,
                session,
                self._encoding,
                max_frame_bytes,
                self._ctx.telemetry,
            )
            if not await self._carry_out(effects):
                return

    def _receive_timeout(self) -> float | None:
        if self._session.state is State.AWAITING_HELLO:
            return HELLO_TIMEOUT_S
        deadline = self._session.next_deadline()
        # aiohttp reads a timeout of 0 as "none": a deadline already due waits a millisecond.
        return None if deadline is None else max(0.001, deadline - time.time())

    async def _carry_out(self, effects: list[Effect]) -> bool:
        """False once the socket is closed."""
        for effect in effects:
            if isinstance(effect, Reply):
                await self._reply(effect.frame)
            elif isinstance(effect, Close):
                await self._close(effect.code, effect.reason)
                return False
            elif isinstance(effect, Authenticated):
                self.log(logging.DEBUG, "ws_authenticated", role=effect.claims.role.value)
                await self._attach(effect)
            elif isinstance(effect, Dispatch) and self.conn is not None:
                self.conn.claims = effect.claims  # a renew may have replaced them
                await self._commands.handle(self.conn, effect.frame)
        return True

    async def _reply(self, frame: f.Outbound) -> None:
        if self.conn is not None:
            self.conn.send(frame)
            return
        await self._write_now(frame)

    async def _write_now(self, frame: f.Outbound) -> None:
        """Write a frame on the socket itself, not through a Conn's outbox and writer."""
        payload = encode(frame, self._encoding)
        conn = self.conn
        # A peer that cannot take it is closed by the writer's next send, or has gone.
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            if conn is None:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self._send(payload)
                return
            # A conn in the hub is watched like its writer's sends (no timer per frame): the
            # hub's watchdog closes it if the peer takes nothing for SEND_TIMEOUT_S.
            conn.sending_since = asyncio.get_running_loop().time()
            try:
                await self._send(payload)
            finally:
                conn.sending_since = None

    async def _send(self, payload: bytes) -> None:
        # The encoded bytes as they are: send_str would decode and encode the text again.
        opcode = WSMsgType.TEXT if self._encoding is Encoding.JSON else WSMsgType.BINARY
        await self._ws.send_frame(payload, opcode)

    def _start_writer(self, conn: Conn) -> None:
        self._writer = asyncio.get_running_loop().create_task(conn.write_loop())

    async def _close(self, code: CloseCode, reason: str) -> None:
        if self.conn is not None:
            # Let the writer flush what was queued (the error that explains the close) first.
            self.conn.stop_writer()
            if self._writer is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
        await self._ws.close(code=code, message=reason.encode())

    # -- attach and detach ----------------------------------------------------------------------

    async def _attach(self, effect: Authenticated) -> None:
        ctx = self._ctx
        # Kept as asked: each text picks the closest language it is configured in.
        lang = effect.lang.lower() or "en"
        conn = Conn(self._conn_id, self._ws, self._encoding, effect.claims, lang=lang)
        conn.transport = self._transport
        self.conn = conn
        ctx.hub.add(conn)
        try:
            case = await ctx.presence.connect(conn)
        except TooManyConnections:
            self._start_writer(conn)
            await self._refuse(
                ErrorCode.TOO_MANY_CONNECTIONS,
                "too many connections for this user; close another tab",
                CloseCode.TOO_MANY_CONNECTIONS,
                effect.ref,
            )
            return
        except (RedisError, OSError) as error:
            # Uncounted, the user could count as gone while connected: try again later.
            log.warning("presence_failed", conn_id=conn.id, error=str(error)[:200])
            self._start_writer(conn)
            await self._refuse(
                ErrorCode.UNAVAILABLE,
                "the desk is unreachable; reconnect",
                CloseCode.TRY_AGAIN_LATER,
                effect.ref,
            )
            return
        # The welcome is the first frame: written here, ahead of what the hub queued for this
        # connection meanwhile, then the writer drains the outbox (one task hop less per connect).
        await self._write_now(ctx.welcome(effect.claims, lang, effect.ref))
        self._start_writer(conn)
        try:
            resume = {point.consultation: point for point in effect.resume}
            await self._restore(conn, resume, case)
        except (RedisError, OSError, Refused) as error:
            log.warning("restore_failed", conn_id=conn.id, error=str(error)[:200])
            conn.send(
                f.Error(code=ErrorCode.UNAVAILABLE, message="could not load your state; reconnect")
            )
        except Exception:  # a bug: this user reconnects; everyone else goes on
            log.exception("restore_crashed", conn_id=conn.id)
            conn.send(f.Error(code=ErrorCode.INTERNAL, message="internal error; logged"))

    async def _refuse(
        self, code: ErrorCode, message: str, close: CloseCode, ref: str | None
    ) -> None:
        """An authenticated socket that cannot be served after all: say why, close, forget."""
        assert self.conn is not None
        self.conn.send(f.Error(code=code, message=message, ref=ref))
        await self._close(close, message)
        self._ctx.hub.remove(self.conn)
        self.conn = None

    async def _restore(
        self, conn: Conn, resume: dict[str, f.ResumePoint], case: views.OpenCase | None
    ) -> None:
        """Tell a (re)connecting user where they stand: their wait, their consultations; follow
        each consultation from where the client says it stands (else from now), so a resume
        gets everything after, then live messages, with no gap and no duplicate. A patient's
        `case` comes with their presence count (None: read it here)."""
        ctx = self._ctx
        client, engine = ctx.link.client, ctx.link.engine
        if conn.role is Role.PATIENT:
            if case is None:
                case = await views.open_case(client, conn.user_id)
            if case.ticket_id:
                state, department = case.ticket_state, case.ticket_department
                if not state:  # not read with the case
                    ticket = await engine.ticket(case.ticket_id)
                    state, department = ticket.state.value, ticket.department
                if state == "waiting":
                    conn.ticket, conn.ticket_department = case.ticket_id, department
                    await ctx.queue_watch.tell_position(conn)
            if case.consultation_id:
                view = await ctx.render(case.consultation_id, with_intake=False)
                if view.state == "active":  # an offer is not a doctor yet: it may expire
                    conn.send(
                        f.Assigned(
                            consultation=view.id,
                            department=view.department,
                            doctor_name=view.doctor_name,
                            epoch=view.epoch,
                            last_seq=view.last_seq,
                        )
                    )
                await self._follow(conn, view, resume.pop(view.id, None))
            await self._resume_closed(conn, resume)
            return
        if conn.role is Role.DOCTOR:
            with contextlib.suppress(Refused):  # a doctor who never went on duty: nothing to renew
                await engine.heartbeat(conn.user_id)
            # Where they stand: a reloaded console shows the desk's status, not a guess.
            doctor = await engine.doctor(conn.user_id)
            conn.send(
                f.StatusChanged(
                    status=doctor.status.value if doctor else "offline",  # type: ignore[arg-type]
                    active=doctor.active if doctor else 0,
                    capacity=doctor.capacity if doctor else ctx.capacity_of(conn.claims),
                )
            )
            for consultation in await views.doctor_consultations(client, conn.user_id):
                view = await ctx.view_for_doctor(consultation, conn.user_id)
                if view.state == "offered":
                    deadline = await ctx.accept_deadline(consultation)
                    conn.send(f.Offered(consultation=view, deadline_ms=deadline))
                elif view.state == "active":
                    conn.send(f.Opened(consultation=view))
                    await self._follow(conn, view, resume.pop(view.id, None))
            await self._resume_closed(conn, resume)
        if conn.claims.departments:
            conn.send(await ctx.queue_watch.summary(list(conn.claims.departments)))

    async def _follow(
        self, conn: Conn, view: f.ConsultationView, point: f.ResumePoint | None
    ) -> None:
        epoch, seq = (point.epoch, point.seq) if point else (view.epoch, view.last_seq)
        await self._ctx.fanout.follow(conn, view.id, epoch, seq)

    async def _resume_closed(self, conn: Conn, rest: dict[str, f.ResumePoint]) -> None:
        """Resume points of consultations that are no longer open for this user: one that
        ended while they were away gets its last messages, then `ended`."""
        ctx = self._ctx
        for point in rest.values():
            try:
                state = (await ctx.link.engine.consultation(point.consultation)).state.value
            except Refused:
                continue  # unknown (expired, or never was)
            if state != "ended":
                continue  # still open, but not theirs any more: nothing to finish
            try:
                record, _ = await self._commands.authorize(
                    conn.claims, point.consultation, Action.READ_TRANSCRIPT
                )
            except ProtocolError:
                continue  # not theirs: nothing to say
            await ctx.fanout.follow(conn, record.id, point.epoch, point.seq)
            await ctx.fanout.flush(record.id)
            conn.send(
                f.Ended(
                    consultation=record.id, outcome=record.outcome or "", summary=record.summary
                )
            )
            await ctx.fanout.unfollow(conn, record.id)

    async def detach(self) -> None:
        conn = self.conn
        if conn is None:
            return
        ctx = self._ctx
        orphaned = ctx.hub.remove(conn)
        conn.stop_writer()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await ctx.fanout.forget(orphaned)
        # If it was the user's last connection anywhere, their absence starts (grace timers).
        await ctx.presence.disconnect(conn)


def _effects_for(
    kind: WSMsgType,
    data: str | bytes,
    session: Session,
    encoding: Encoding,
    max_frame_bytes: int,
    telemetry: Telemetry,
) -> list[Effect]:
    now = time.time()
    expected = WSMsgType.TEXT if encoding is Encoding.JSON else WSMsgType.BINARY
    try:
        frame = _readable_frame(kind, data, encoding, expected, max_frame_bytes)
    except ProtocolError as error:
        telemetry.received(INVALID_FRAME)
        return session.reject(error, now)
    telemetry.received(frame.__struct_config__.tag)  # type: ignore[arg-type]
    return session.receive(frame, now)


def _readable_frame(
    kind: WSMsgType, data: str | bytes, encoding: Encoding, expected: WSMsgType, max_bytes: int
) -> f.Inbound:
    """The frame, or ProtocolError saying why it cannot be read."""
    if kind is not expected:
        wanted = "text" if expected is WSMsgType.TEXT else "binary"
        raise ProtocolError(ErrorCode.BAD_FRAME, f"this connection takes {wanted} frames")
    if len(data) > max_bytes:
        raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"frames are limited to {max_bytes} bytes")
    return decode(data, encoding)
