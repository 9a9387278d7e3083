"""Bytes ⇄ frames, in JSON (text frames) or msgpack (binary frames).

The encoding is chosen per connection by WebSocket subprotocol; both decode to the same typed
frames, so a JSON client and a msgpack client talk to each other through the same session code.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from chatsvc.protocol.errors import ErrorCode, ProtocolError
from chatsvc.protocol.frames import MAX_FRAME_ID_CHARS, Inbound, Outbound


class Encoding(StrEnum):
    JSON = "chatsvc.json"
    MSGPACK = "chatsvc.msgpack"


# Offered to clients in this order; a client that asks for none gets JSON.
SUBPROTOCOLS = (Encoding.JSON.value, Encoding.MSGPACK.value)

_JSON_IN = msgspec.json.Decoder(Inbound)
_MSGPACK_IN = msgspec.msgpack.Decoder(Inbound)
# The client's side: what the server sends.
_JSON_FROM_SERVER = msgspec.json.Decoder(Outbound)
_MSGPACK_FROM_SERVER = msgspec.msgpack.Decoder(Outbound)
_JSON_LOOSE = msgspec.json.Decoder()
_MSGPACK_LOOSE = msgspec.msgpack.Decoder()
_JSON_OUT = msgspec.json.Encoder()
# What hostile bytes can make a decoder raise: malformed input, strings that are not UTF-8,
# and nesting deep enough to exhaust the recursion limit.
# TypeError and UnicodeEncodeError: text handed to the msgpack decoder, lone surrogates in text.
_UNDECODABLE = (msgspec.DecodeError, UnicodeError, RecursionError, TypeError)
_MSGPACK_OUT = msgspec.msgpack.Encoder()


def _frame_id(data: bytes | str, encoding: Encoding) -> str | None:
    """The `id` of a frame that failed validation, so the error can refer to it."""
    try:
        loose = (_JSON_LOOSE if encoding is Encoding.JSON else _MSGPACK_LOOSE).decode(data)
    except _UNDECODABLE:
        return None
    if isinstance(loose, dict) and isinstance(loose.get("id"), str):
        return loose["id"][:MAX_FRAME_ID_CHARS]
    return None


def decode(data: bytes | str, encoding: Encoding) -> Inbound:
    try:
        if encoding is Encoding.JSON:
            return _JSON_IN.decode(data)
        return _MSGPACK_IN.decode(data)
    except msgspec.ValidationError as error:
        raise ProtocolError(ErrorCode.BAD_FRAME, str(error), _frame_id(data, encoding)) from None
    except _UNDECODABLE as error:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not valid {encoding.name}: {error}") from None


def decode_outbound(data: bytes | str, encoding: Encoding) -> Outbound:
    """A server frame, as a client reads it (chatsvc.client, tests)."""
    try:
        if encoding is Encoding.JSON:
            return _JSON_FROM_SERVER.decode(data)
        return _MSGPACK_FROM_SERVER.decode(data)
    except (msgspec.ValidationError, *_UNDECODABLE) as error:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"bad server frame: {error}") from None


def encode(frame: Inbound | Outbound, encoding: Encoding) -> bytes:
    if encoding is Encoding.JSON:
        return _JSON_OUT.encode(frame)
    return _MSGPACK_OUT.encode(frame)
