"""Wire types: every frame, one definition for both the JSON and the msgpack encoding.

Client frames may carry an `id`; every reply and error refers to it as `ref`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from chatsvc.protocol.errors import ErrorCode

PROTOCOL_VERSION = 1
# Ids are echoed back in every reply; a bound keeps a client from making us echo megabytes.
MAX_FRAME_ID_CHARS = 128
FrameId = Annotated[str, msgspec.Meta(max_length=MAX_FRAME_ID_CHARS)] | None


class Frame(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    pass


# Client → server


class Hello(Frame, tag="hello"):
    """First frame of every connection: the token and the protocol version the client speaks."""

    token: str
    protocol: int = PROTOCOL_VERSION
    id: FrameId = None


class Ping(Frame, tag="ping"):
    id: FrameId = None


Inbound = Hello | Ping

# Server → client


class Welcome(Frame, tag="welcome"):
    protocol: int
    role: str
    user_id: str
    expires_at: int
    ref: FrameId = None


class Pong(Frame, tag="pong"):
    ref: FrameId = None


class Error(Frame, tag="error"):
    code: ErrorCode
    message: str
    ref: FrameId = None


Outbound = Welcome | Pong | Error
