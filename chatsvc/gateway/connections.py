"""The WebSocket connections this process holds, so shutdown can close every one of them."""

from __future__ import annotations

import asyncio

from aiohttp import web

from chatsvc.protocol.errors import CloseCode

# How long one client gets to answer our close frame before its socket is dropped.
CLOSE_TIMEOUT_S = 2.0


class Connections:
    def __init__(self) -> None:
        self._sockets: set[web.WebSocketResponse] = set()

    def add(self, ws: web.WebSocketResponse) -> None:
        self._sockets.add(ws)

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)

    def __len__(self) -> int:
        return len(self._sockets)

    async def close_all(self, code: CloseCode, reason: str) -> None:
        """Close every socket at once (not one after another), each bounded in time."""
        sockets = list(self._sockets)
        await asyncio.gather(
            *(
                asyncio.wait_for(ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT_S)
                for ws in sockets
            ),
            return_exceptions=True,
        )
