"""Structured logging: one event per line, JSON or key=value, with bound context.

Events carry ids, counts and lengths, never message bodies, symptoms, names or tokens (health
data and credentials). aiohttp's and redis-py's own stdlib log records go through the same
renderer, so the stream stays one format.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog
from aiohttp import web

REQUEST_ID_HEADER = "X-Request-Id"


def configure_logging(
    level: Literal["debug", "info", "warning", "error"], fmt: Literal["text", "json"]
) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    structlog.configure(
        # filter_by_level first: a line below the level costs one level check, not a timestamp.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


log = structlog.get_logger("chatsvc.http")
# Checked before a line is built: a dropped line then costs a level check.
_level = logging.getLogger("chatsvc.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id and log it once.

    A well-formed X-Request-Id from the caller (a load balancer's, say) is kept so that one id
    follows a request across systems; anything else is replaced by a fresh id.

    Logs the path without its query string: a query may carry a token or an id that is nobody's
    business in a log. A WebSocket (status 101) is logged at debug: its `ws_closed` line, which
    carries the same request id, says how it ended.
    """
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # A fresh id is for correlating lines, not a secret: 128 random bits without uuid4's
    # system call for randomness (the random module is reseeded in each forked worker).
    request_id = (
        incoming
        if 0 < len(incoming) <= 64 and incoming.isprintable()
        else f"{random.getrandbits(128):032x}"
    )
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as error:
            status = error.status
            error.headers[REQUEST_ID_HEADER] = request_id
            raise
        finally:
            level = logging.DEBUG if status == 101 else logging.INFO
            if _level.isEnabledFor(level):
                log.log(
                    level,
                    "http_request",
                    method=request.method,
                    path=request.path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
