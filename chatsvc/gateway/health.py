"""Health endpoints: `/healthz` (the process answers) and `/readyz` (it can serve the desk)."""

from __future__ import annotations

from aiohttp import web

from chatsvc.gateway.keys import REDIS_LINK


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    readiness = await request.app[REDIS_LINK].readiness()
    if readiness.ready:
        return web.json_response({"status": "ready"})
    body = {"status": "not_ready", "reason": readiness.state.value, "detail": readiness.detail}
    return web.json_response(body, status=503)
