"""`chatsvc serve`: one gateway process, from configuration to a clean exit.

Order of start: lock the data directory → resolve the token secret → start the embedded Redis
if no URL is configured → serve HTTP. Order of stop (SIGTERM or SIGINT): stop accepting → close
WebSockets with 1012 → wait for in-flight handlers → close Redis → stop the embedded Redis →
release the lock → exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web

from chatsvc.config import Config, LoadedConfig, ServerConfig
from chatsvc.datadir import DataDirLock, load_or_create_token_secret
from chatsvc.demo import demo_links, format_links
from chatsvc.embedded_redis import EmbeddedRedis
from chatsvc.gateway.api import metrics_response
from chatsvc.gateway.app import create_app
from chatsvc.gateway.keys import CONTEXT, REDIS_LINK
from chatsvc.gateway.redis_link import redact_url
from chatsvc.gateway.settings import Settings
from chatsvc.workers import WorkerGroup, resolve_port, worker_index

log = structlog.get_logger("chatsvc.server")

EMBEDDED_REDIS_DIR = "redis"
# What the embedded Redis fsyncs for each [redis] ack_after: "write" asks no fsync per write
# (every second, as Redis advises), "fsync" needs it. "replica" needs an external Redis with a
# replica: the embedded one has none, so the link reports it unusable.
EMBEDDED_APPENDFSYNC = {"write": "everysec", "fsync": "always", "replica": "always"}
# How long a worker of `--workers` waits for Redis before it takes connections anyway.
WORKER_READY_WAIT_S = 15.0
# Allocations between young-generation collections (CPython's default is 700): a gateway
# allocates a few hundred objects per frame, so the default collects many times a second.
GC_YOUNG_THRESHOLD = 50_000
# Young collections per middle one, and middle ones per full one (default 10 each).
GC_OLDER_THRESHOLD = 20


def token_secret_for(loaded: LoadedConfig) -> str:
    return loaded.config.auth.token_secret or load_or_create_token_secret(loaded.data_dir)


def run(loaded: LoadedConfig, demo: bool = False, workers: int = 1) -> int:
    """Serve until SIGTERM or SIGINT; the return value is the process exit status."""
    index = worker_index()
    if index is not None:
        return _run_worker(loaded, index)
    config = loaded.config
    lock = DataDirLock(loaded.data_dir)
    lock.acquire()
    embedded: EmbeddedRedis | None = None
    try:
        secret = token_secret_for(loaded)
        redis_url = config.redis.url
        if not redis_url:
            embedded = EmbeddedRedis(
                loaded.data_dir / EMBEDDED_REDIS_DIR,
                binary=config.redis.server_binary,
                appendfsync=EMBEDDED_APPENDFSYNC[config.redis.ack_after],
            )
            embedded.start()
            redis_url = embedded.url
        if workers > 1:
            port = resolve_port(config.server.host, config.server.port)
            if demo:
                _print_demo_links(config, port, secret)
            group = WorkerGroup(loaded, workers, port, redis_url)
            _run_loop(group.run())
            if group.failed:
                raise ServeError(f"{group.failed}: see its log above")
        else:
            settings = Settings(config=config, redis_url=redis_url, token_secret=secret)
            _run_loop(_serve(settings, embedded is not None, loaded, demo))
    finally:
        if embedded is not None:
            embedded.stop()
        lock.release()
    log.info("chatsvc_stopped")
    return 0


def _run_worker(loaded: LoadedConfig, index: int) -> int:
    """One worker of `--workers`: the parent holds the lock and Redis and resolved the port."""
    structlog.contextvars.bind_contextvars(worker=index)
    settings = Settings(
        config=loaded.config,
        redis_url=loaded.config.redis.url,
        token_secret=token_secret_for(loaded),
    )
    _run_loop(_serve(settings, False, loaded, demo=False, worker=index))
    log.info("worker_stopped")
    return 0


def _print_demo_links(config: Config, port: int, secret: str) -> None:
    """On stdout, not in the log: the links carry tokens, which are never logged."""
    base_url = f"http://{_url_host(config.server.host)}:{port}"
    print(format_links(demo_links(base_url, secret, config, time.time())), flush=True)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(
    settings: Settings,
    embedded: bool,
    loaded: LoadedConfig,
    demo: bool,
    worker: int | None = None,
) -> None:
    server = settings.config.server
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    runner = web.AppRunner(
        create_app(settings),
        access_log=None,  # the request-log middleware logs every request, with its id
        handle_signals=False,
        shutdown_timeout=server.shutdown_timeout_s,
    )
    await runner.setup()
    cleanups: list[Callable[[], Awaitable[None]]] = []
    try:
        if worker is not None:
            await _wait_until_ready(runner.app, settings.config)
        # Workers share the port: the kernel spreads connections over their sockets.
        site = web.TCPSite(runner, server.host, server.port, reuse_port=worker is not None)
        try:
            await site.start()
        except OSError as error:
            raise ServeError(
                f"cannot listen on {server.host}:{server.port}: {error.strerror}"
            ) from None
        port = runner.addresses[0][1]
        _tune_garbage_collection()
        log.info(
            "chatsvc_listening",
            url=f"http://{_url_host(server.host)}:{port}",
            port=port,
            redis="embedded" if embedded else redact_url(settings.redis_url),
            config=loaded.source,
            data_dir=str(loaded.data_dir),
        )
        if demo:
            _print_demo_links(settings.config, port, settings.token_secret)
        if worker is not None and server.worker_metrics_port:
            metrics_runner = await _serve_worker_metrics(runner.app, server, worker)
            cleanups.append(metrics_runner.cleanup)
        await stop.wait()
        log.info("chatsvc_stopping", signal=received[0] if received else None)
    finally:
        for cleanup in cleanups:
            await cleanup()
        await runner.cleanup()


async def _wait_until_ready(app: web.Application, config: Config) -> None:
    """A worker joins the shared port only once it can serve the desk, so a restarted worker
    takes no connections it would have to refuse; but not later than a bound, so that a Redis
    down at start leaves the port answering (/readyz says 503 until it is back)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app[REDIS_LINK].wait_ready(), WORKER_READY_WAIT_S)


async def _serve_worker_metrics(
    app: web.Application, server: ServerConfig, worker: int
) -> web.AppRunner:
    """`GET /metrics` alone, on the worker's own port, for this worker's series."""

    async def metrics(request: web.Request) -> web.Response:
        return await metrics_response(app[CONTEXT])

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(metrics_app, access_log=None, handle_signals=False)
    await runner.setup()
    port = server.worker_metrics_port + worker
    try:
        await web.TCPSite(runner, server.host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise ServeError(f"cannot listen on {server.host}:{port}: {error.strerror}") from None
    log.info("worker_metrics_listening", port=port)
    return runner


def _tune_garbage_collection() -> None:
    """Everything built to start (modules, config, the app) lives as long as the process: move
    it out of the collector's sight, and collect the young generation less often. A gateway
    holding thousands of sockets makes little cyclic garbage, but with the default thresholds
    the collector walked its whole heap again and again as connections arrived: up to a fifth
    of its CPU and pauses of hundreds of milliseconds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_OLDER_THRESHOLD, GC_OLDER_THRESHOLD)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class ServeError(Exception):
    """The service cannot start for a reason the operator can fix (e.g. the port is taken)."""


def fail(message: str) -> int:
    print(f"chatsvc: {message}", file=sys.stderr)
    return 1
