"""Typed application keys: the state the gateway's handlers share through `app[...]`."""

from __future__ import annotations

from aiohttp import web

from chatsvc.gateway.commands import Commands
from chatsvc.gateway.connections import Connections
from chatsvc.gateway.context import GatewayContext
from chatsvc.gateway.redis_link import RedisLink
from chatsvc.gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS_LINK = web.AppKey("redis_link", RedisLink)
CONNECTIONS = web.AppKey("connections", Connections)
CONTEXT = web.AppKey("context", GatewayContext)
COMMANDS = web.AppKey("commands", Commands)
