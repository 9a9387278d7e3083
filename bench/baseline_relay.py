"""The minimal relay the relay bench compares chatsvc with: what the same job costs without it.

A tiny aiohttp WebSocket server on Redis, with nothing but the relay: no auth, no triage, no
access checks, no transcript seq, no dedup, no resume, no rate limit. A socket's first text
frame names its place, `{"pair": "<id>", "side": "p" | "d"}`. Each later text frame is relayed
as it is: one pipelined round trip does `XADD bench:relay:<pair> * m <frame>` (the pair's
stream, so Redis writes what chatsvc writes: one AOF record per message) and `PUBLISH` to the
other side's channel; then the sender gets the one-character ack `a`. A single pub/sub
connection per process forwards what arrives on its channels to the socket of that side.
Frames of one socket are handled one at a time, in order, as chatsvc does.

Run it as the bench does, one process per "gateway":

    .venv/bin/python bench/baseline_relay.py --redis unix:///tmp/x/redis.sock --port 0

It prints `listening <port>` on stdout once it serves, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from aiohttp import WSMsgType, web
from redis.asyncio import Redis

STREAM_PREFIX = "bench:relay:"
# The stream is trimmed roughly at this length, as a chat service would cap a transcript.
STREAM_MAXLEN = 10_000
ACK = "a"
OTHER_SIDE = {"p": "d", "d": "p"}


def channel(pair: str, side: str) -> str:
    return f"{STREAM_PREFIX}{pair}:{side}"


class Relay:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self.sockets: dict[str, web.WebSocketResponse] = {}

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        if first.type is not WSMsgType.TEXT:
            await ws.close()
            return ws
        place = json.loads(first.data)
        pair, side = str(place["pair"]), str(place["side"])
        mine, theirs = channel(pair, side), channel(pair, OTHER_SIDE[side])
        stream = f"{STREAM_PREFIX}{pair}"
        self.sockets[mine] = ws
        await self.pubsub.subscribe(mine)
        await ws.send_str(ACK)  # placed: the client may send
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    break
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(stream, {"m": message.data}, maxlen=STREAM_MAXLEN, approximate=True)
                    pipe.publish(theirs, message.data)
                    await pipe.execute()
                await ws.send_str(ACK)
        finally:
            self.sockets.pop(mine, None)
            with contextlib.suppress(Exception):
                await self.pubsub.unsubscribe(mine)
        return ws

    async def forward(self) -> None:
        """Pass each published frame to the socket of its channel, if it is still here."""
        await self.pubsub.subscribe(channel("-", "-"))  # redis-py listens once subscribed
        while True:
            message = await self.pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            ws = self.sockets.get(message["channel"])
            if ws is not None and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(message["data"])


async def serve(redis_url: str, port: int) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True, max_connections=1000)
    relay = Relay(redis)
    app = web.Application()
    app.router.add_get("/ws", relay.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"listening {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    forwarder = asyncio.create_task(relay.forward())
    try:
        await stop.wait()
    finally:
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder
        await runner.cleanup()
        await relay.pubsub.aclose()
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis", required=True, help="redis URL (unix:///path/redis.sock)")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one)")
    args = parser.parse_args(argv)
    try:
        import uvloop  # chatsvc serve runs on uvloop too: the comparison is like for like
    except ImportError:
        asyncio.run(serve(args.redis, args.port))
    else:
        uvloop.run(serve(args.redis, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
