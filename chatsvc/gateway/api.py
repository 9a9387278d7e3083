"""REST: guest sessions and transcript export.

`POST /api/session` hands a browser a guest patient token (rate-limited per client address,
counted in Redis so every gateway shares the count). The other endpoints take a token in
`Authorization: Bearer …` (never in the URL: URLs end up in logs) and go through the same
access matrix and audit as the WebSocket commands. Errors are JSON: {"error": {code, message}}.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from chatsvc import tokens
from chatsvc.gateway.context import GatewayContext
from chatsvc.gateway.keys import COMMANDS, CONTEXT, SETTINGS
from chatsvc.gateway.supervision import figures_frame
from chatsvc.gateway.telemetry import exposition
from chatsvc.protocol.access import Action
from chatsvc.protocol.errors import ErrorCode, ProtocolError
from chatsvc.tokens import Claims, Role
from triage import keys
from triage.errors import TriageError
from triage.transcripts import TranscriptError, TranscriptNotFound

# Guest sessions are counted per address in windows of this length.
GUEST_WINDOW_S = 60
# Guest ids: "g-" and 16 hex characters (64 random bits), unguessable and within the id rule.
GUEST_ID_BYTES = 8


def error_response(status: int, code: ErrorCode, message: str) -> web.Response:
    return web.json_response({"error": {"code": code.value, "message": message}}, status=status)


def client_address(request: web.Request, trusted_header: str) -> str:
    """The client's address: the TCP peer, or (behind a load balancer, when configured) the
    rightmost entry of the trusted header, the one our own balancer wrote."""
    if trusted_header:
        value = request.headers.get(trusted_header, "")
        last = value.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.remote or "unknown"


async def create_session(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    ctx = request.app[CONTEXT]
    config = settings.config
    address = client_address(request, config.server.trusted_proxy_header)
    window = int(time.time()) // GUEST_WINDOW_S
    counter = keys.guest_sessions(address, window)
    try:
        async with ctx.link.client.pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, 2 * GUEST_WINDOW_S)
            issued, _ = await pipe.execute()
    except (RedisError, OSError):
        return error_response(503, ErrorCode.UNAVAILABLE, "the desk is unreachable; retry")
    if int(issued) > config.auth.guest_sessions_per_minute:
        response = error_response(
            429, ErrorCode.RATE_LIMITED, "too many new sessions from this address; wait a minute"
        )
        response.headers["Retry-After"] = str(GUEST_WINDOW_S - int(time.time()) % GUEST_WINDOW_S)
        return response
    user_id = "g-" + secrets.token_hex(GUEST_ID_BYTES)
    now = time.time()
    return _guest_token(settings.token_secret, config.auth.token_ttl_s, user_id, now, int(now))


async def renew_session(request: web.Request) -> web.Response:
    """`POST /api/session/renew`: a fresh token for the patient of a still valid one, so a guest
    keeps their identity (and their consultation) past `[auth] token_ttl_s`, up to
    `guest_session_max_s` after their session began: a stolen guest token cannot renew itself
    for ever. Staff sign in again instead."""
    claims = _bearer(request)
    if claims.role is not Role.PATIENT:
        return error_response(403, ErrorCode.FORBIDDEN, "only patient sessions are renewed")
    settings = request.app[SETTINGS]
    auth = settings.config.auth
    now = time.time()
    if now - claims.session_started > auth.guest_session_max_s:
        return error_response(
            403, ErrorCode.FORBIDDEN, "this session is too old to renew; start a new one"
        )
    return _guest_token(
        settings.token_secret, auth.token_ttl_s, claims.user_id, now, claims.session_started
    )


def _guest_token(secret: str, ttl: int, user_id: str, now: float, started: int) -> web.Response:
    token = tokens.issue(secret, Role.PATIENT, user_id, now, ttl, session_started=started)
    return web.json_response(
        {"token": token, "user_id": user_id, "role": "patient", "expires_at": int(now) + ttl},
        status=201,
        # A bearer token: no cache on the way may keep it.
        headers={"Cache-Control": "no-store"},
    )


def _bearer(request: web.Request) -> Claims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("send Authorization: Bearer <token>")
    try:
        return tokens.verify(request.app[SETTINGS].verify_secrets, token.strip(), time.time())
    except tokens.TokenError as error:
        raise _unauthorized(str(error)) from None


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    body = {"error": {"code": ErrorCode.AUTH_FAILED.value, "message": message}}
    return web.HTTPUnauthorized(text=json.dumps(body), content_type="application/json")


async def transcript(request: web.Request) -> web.StreamResponse:
    claims = _bearer(request)
    consultation = request.match_info["consultation"]
    form = request.query.get("format", "json")
    if form not in ("json", "text"):
        return error_response(400, ErrorCode.BAD_FRAME, "format must be json or text")
    commands = request.app[COMMANDS]
    transcripts = request.app[CONTEXT].link.transcripts
    try:
        await commands.authorize(
            claims, consultation, Action.READ_TRANSCRIPT, audit_as="export_transcript"
        )
        body = (
            await transcripts.export_json(consultation)
            if form == "json"
            else await transcripts.export_text(consultation)
        )
    except ProtocolError as error:
        return error_response(403, error.code, error.message)
    except TranscriptNotFound:
        return error_response(404, ErrorCode.NOT_FOUND, "this consultation has no transcript")
    except TranscriptError:  # it changed epoch while being read: a retry reads the new one
        return error_response(503, ErrorCode.UNAVAILABLE, "the transcript changed; retry")
    except (RedisError, OSError):
        return error_response(503, ErrorCode.UNAVAILABLE, "the desk is unreachable; retry")
    filename = f"consultation-{consultation}.{'json' if form == 'json' else 'txt'}"
    return web.Response(
        text=body,
        content_type="application/json" if form == "json" else "text/plain",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


async def desk_metrics(request: web.Request) -> web.Response:
    """The desk's live figures, as pushed to supervisors (`metrics` frame): supervisors only,
    their departments only."""
    claims = _bearer(request)
    if claims.role is not Role.SUPERVISOR:
        return error_response(403, ErrorCode.FORBIDDEN, "desk metrics are for supervisors")
    supervision = request.app[CONTEXT].supervision
    try:
        desk = await supervision.metrics()
    except (RedisError, OSError, TriageError):
        return error_response(503, ErrorCode.UNAVAILABLE, "the desk is unreachable; retry")
    frame = figures_frame(desk, claims, supervision.window_s, supervision.red_flag_alert_s)
    return web.Response(
        body=msgspec.json.encode(frame),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def prometheus_metrics(request: web.Request) -> web.Response:
    """`GET /metrics`: this process's Prometheus series and the desk's gauges (telemetry.py).
    Unauthenticated, like most exporters: keep it off the public listener (operations.md)."""
    return await metrics_response(request.app[CONTEXT])


async def metrics_response(ctx: GatewayContext) -> web.Response:
    desk = None
    with contextlib.suppress(RedisError, OSError, TriageError):
        desk = await ctx.supervision.metrics()
    return web.Response(
        body=exposition(ctx.telemetry, desk),
        headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )
