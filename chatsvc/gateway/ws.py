"""The WebSocket endpoint `/ws`: the only code that awaits a client socket.

It pumps frames through the codec and the sans-I/O `Session` and carries out the effects the
session returns. Logs carry the connection id, role and sizes, never frame contents.
"""

from __future__ import annotations

import functools
import time
import uuid

import structlog
from aiohttp import WSMsgType, web

from chatsvc import tokens
from chatsvc.gateway.keys import CONNECTIONS, SETTINGS
from chatsvc.protocol.codec import SUBPROTOCOLS, Encoding, decode, encode
from chatsvc.protocol.errors import CloseCode, ErrorCode, ProtocolError
from chatsvc.protocol.session import Close, Effect, Reply, Session, State

log = structlog.get_logger(__name__)

# A socket that has not authenticated by then is a scanner or a broken client: drop it.
HELLO_TIMEOUT_S = 10.0
# WebSocket ping interval: finds dead peers behind NATs and proxies that drop idle TCP.
HEARTBEAT_S = 20.0
# Frames up to this multiple of max_frame_bytes get a frame_too_large error and the socket
# keeps serving; beyond it aiohttp closes with 1009 before buffering more.
HARD_FRAME_LIMIT_FACTOR = 4


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    connections = request.app[CONNECTIONS]
    limits = settings.config.limits
    if len(connections) >= limits.max_connections:
        raise web.HTTPServiceUnavailable(text="connection limit reached")
    ws = web.WebSocketResponse(
        protocols=SUBPROTOCOLS,
        heartbeat=HEARTBEAT_S,
        max_msg_size=limits.max_frame_bytes * HARD_FRAME_LIMIT_FACTOR,
    )
    await ws.prepare(request)
    encoding = Encoding(ws.ws_protocol) if ws.ws_protocol else Encoding.JSON
    conn_id = uuid.uuid4().hex[:12]
    session = Session(verify_token=functools.partial(tokens.verify, settings.token_secret))
    connections.add(ws)
    bound = log.bind(conn_id=conn_id, encoding=encoding.name.lower())
    bound.info("ws_open")
    try:
        await _serve(ws, session, encoding, limits.max_frame_bytes, bound)
    finally:
        connections.discard(ws)
        role = session.claims.role.value if session.claims else None
        code = None if ws.close_code is None else int(ws.close_code)
        bound.info("ws_closed", role=role, close_code=code)
    return ws


async def _serve(
    ws: web.WebSocketResponse,
    session: Session,
    encoding: Encoding,
    max_frame_bytes: int,
    bound: structlog.stdlib.BoundLogger,
) -> None:
    while not ws.closed:
        awaiting_hello = session.state is State.AWAITING_HELLO
        try:
            message = await ws.receive(timeout=HELLO_TIMEOUT_S if awaiting_hello else None)
        except TimeoutError:
            await ws.close(code=CloseCode.AUTH_TIMEOUT, message=b"no hello in time")
            return
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
        if message.type is WSMsgType.ERROR:
            bound.info("ws_error", error=type(ws.exception()).__name__)
            return
        effects = _effects_for(message.type, message.data, session, encoding, max_frame_bytes)
        for effect in effects:
            if isinstance(effect, Reply):
                await _send(ws, effect, encoding)
            elif isinstance(effect, Close):
                await ws.close(code=effect.code, message=effect.reason.encode())
                return
        if session.state is State.OPEN and awaiting_hello and session.claims is not None:
            bound.info("ws_authenticated", role=session.claims.role.value)


def _effects_for(
    kind: WSMsgType, data: str | bytes, session: Session, encoding: Encoding, max_frame_bytes: int
) -> list[Effect]:
    expected = WSMsgType.TEXT if encoding is Encoding.JSON else WSMsgType.BINARY
    if kind is not expected:
        wanted = "text" if expected is WSMsgType.TEXT else "binary"
        return session.reject(
            ProtocolError(ErrorCode.BAD_FRAME, f"this connection takes {wanted} frames")
        )
    if len(data) > max_frame_bytes:
        return session.reject(
            ProtocolError(
                ErrorCode.FRAME_TOO_LARGE, f"frames are limited to {max_frame_bytes} bytes"
            )
        )
    try:
        frame = decode(data, encoding)
    except ProtocolError as error:
        return session.reject(error)
    return session.receive(frame, time.time())


async def _send(ws: web.WebSocketResponse, reply: Reply, encoding: Encoding) -> None:
    payload = encode(reply.frame, encoding)
    if encoding is Encoding.JSON:
        await ws.send_str(payload.decode())
    else:
        await ws.send_bytes(payload)
