"""The application factory: routes, shared state and the order things start and stop in.

Start: the Redis link begins connecting in the background (HTTP answers at once; /readyz says
when the desk can be served). Stop: `on_shutdown` closes every WebSocket with 1012 so clients
reconnect elsewhere, aiohttp waits for in-flight handlers, then the cleanup context cancels the
link's task and closes Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from chatsvc.gateway.api import (
    create_session,
    desk_metrics,
    prometheus_metrics,
    renew_session,
    transcript,
)
from chatsvc.gateway.commands import Commands
from chatsvc.gateway.connections import Connections
from chatsvc.gateway.context import GatewayContext
from chatsvc.gateway.desk import desk_rules, durability
from chatsvc.gateway.desk_feed import DeskFeed
from chatsvc.gateway.fanout import Fanout
from chatsvc.gateway.health import healthz, readyz
from chatsvc.gateway.keys import COMMANDS, CONNECTIONS, CONTEXT, REDIS_LINK, SETTINGS
from chatsvc.gateway.pages import Pages
from chatsvc.gateway.presence import GatewayPresence
from chatsvc.gateway.queue_watch import QueueWatch
from chatsvc.gateway.redis_link import RedisLink
from chatsvc.gateway.settings import Settings
from chatsvc.gateway.supervision import Supervision
from chatsvc.gateway.sweeper import Sweeper
from chatsvc.gateway.ws import websocket_handler
from chatsvc.observability import request_log_middleware
from chatsvc.protocol.errors import CloseCode


async def _redis_link_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[SETTINGS].config
    link = RedisLink(
        app[SETTINGS].redis_url,
        desk_rules(config),
        config.redis.connect_timeout_s,
        config.redis.retry_max_backoff_s,
        max_message_chars=config.limits.max_message_chars,
        durability=durability(config),
    )
    app[REDIS_LINK] = link
    ctx = GatewayContext(config=config, link=link)
    ctx.hub.telemetry = ctx.telemetry
    ctx.telemetry.watch(ctx.hub)
    link.scripts.observer = ctx.telemetry.redis_call
    ctx.fanout = Fanout(ctx.hub, link)
    ctx.queue_watch = QueueWatch(ctx)
    ctx.presence = GatewayPresence(ctx.hub, link, config.limits.max_connections_per_user)
    ctx.supervision = Supervision(
        ctx.hub, link, config.metrics.window_s, config.metrics.red_flag_alert_s
    )
    app[CONTEXT] = ctx
    app[COMMANDS] = Commands(ctx)
    tasks = [
        asyncio.create_task(link.run(), name="redis-link"),
        asyncio.create_task(Sweeper(link).run(), name="sweeper"),
        asyncio.create_task(ctx.fanout.run(), name="fanout"),
        asyncio.create_task(ctx.fanout.run_position_checks(), name="position-checks"),
        asyncio.create_task(DeskFeed(ctx).run(), name="desk-feed"),
        asyncio.create_task(ctx.queue_watch.run(), name="queue-watch"),
        asyncio.create_task(ctx.presence.run(), name="presence"),
        asyncio.create_task(ctx.hub.run_watchdog(), name="writer-watchdog"),
        asyncio.create_task(ctx.supervision.run(), name="supervision"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await link.close()


async def _close_websockets(app: web.Application) -> None:
    await app[CONNECTIONS].close_all(CloseCode.SERVICE_RESTART, "service restart")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[request_log_middleware])
    app[SETTINGS] = settings
    app[CONNECTIONS] = Connections()
    app.cleanup_ctx.append(_redis_link_ctx)
    app.on_shutdown.append(_close_websockets)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_post("/api/session", create_session)
    app.router.add_post("/api/session/renew", renew_session)
    app.router.add_get("/api/consultations/{consultation}/transcript", transcript)
    app.router.add_get("/api/metrics", desk_metrics)
    app.router.add_get("/metrics", prometheus_metrics)
    Pages(settings.config.web.embed_origins).add_routes(app.router)
    return app
