"""Frames as the codec tests build them, and the wire form clients outside this code see.

Hypothesis strategies for every frame type are read off the frame definitions through
`msgspec.inspect`, field by field and within each field's `Annotated` bounds, so every generated
frame is valid, nested `Part`s included, and a frame added to `Inbound` or `Outbound` is
generated from the day it is added. A field of a kind this module does not know fails loudly
(`TypeError`), never silently.

`as_wire_dict` and `pack` are written by hand or with the independent `json` and `msgpack`
libraries, not with msgspec, so the codec is compared against an independent idea of the wire
format. `MINIMAL_INBOUND` holds one hand-written frame of each client type.
"""

from __future__ import annotations

import enum
import functools
import json
import typing
from typing import Any

import msgpack
import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import strategies as st

from chatsvc.protocol.codec import Encoding, decode
from chatsvc.protocol.errors import ErrorCode, ProtocolError
from chatsvc.protocol.frames import Frame, Inbound, Outbound

# msgpack integers are 64-bit: the widest range both encodings carry.
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
# Lists and maps in generated frames stay short: the interest is in their items, not their length.
MAX_LIST_ITEMS = 3

# The wire names are public API: a renamed type breaks every client that knows the old name.
INBOUND_TYPES = [
    "hello",
    "renew",
    "ping",
    "quote",
    "join",
    "leave",
    "set_status",
    "take_next",
    "accept",
    "end",
    "transfer",
    "patient_history",
    "send",
    "typing",
    "read",
    "delivered",
    "fetch",
    "open",
    "list_consultations",
    "list_audit",
]
OUTBOUND_TYPES = [
    "welcome",
    "renewed",
    "token_expiring",
    "pong",
    "error",
    "quoted",
    "joined",
    "queued",
    "guidance",
    "left",
    "assigned",
    "queue_summary",
    "status",
    "offer",
    "consultation",
    "presence",
    "released",
    "patient_history",
    "message",
    "ack",
    "typing",
    "read",
    "delivered",
    "messages",
    "reset",
    "ended",
    "consultations",
    "audit",
    "metrics",
]

INBOUND_CLASSES: tuple[type[Frame], ...] = typing.get_args(Inbound)
OUTBOUND_CLASSES: tuple[type[Frame], ...] = typing.get_args(Outbound)


def tag_of(cls: type[Frame]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def values_of(kind: mi.Type) -> st.SearchStrategy[Any]:
    """Valid values of one field type, within its bounds."""
    if isinstance(kind, mi.StructType):
        return structs_of(kind.cls)
    if isinstance(kind, mi.StrType):
        if kind.pattern is not None:
            raise TypeError(f"no strategy for a str with a pattern: {kind}")
        return st.text(min_size=kind.min_length or 0, max_size=kind.max_length)
    if isinstance(kind, mi.IntType):
        if kind.multiple_of is not None:
            raise TypeError(f"no strategy for an int with multiple_of: {kind}")
        low = max(
            INT64_MIN,
            kind.ge if kind.ge is not None else INT64_MIN,
            kind.gt + 1 if kind.gt is not None else INT64_MIN,
        )
        high = min(
            UINT64_MAX,
            kind.le if kind.le is not None else UINT64_MAX,
            kind.lt - 1 if kind.lt is not None else UINT64_MAX,
        )
        return st.integers(min_value=low, max_value=high)
    if isinstance(kind, mi.FloatType):
        if kind.multiple_of is not None or kind.gt is not None or kind.lt is not None:
            raise TypeError(f"no strategy for a float with exclusive bounds: {kind}")
        return st.floats(
            min_value=kind.ge, max_value=kind.le, allow_nan=False, allow_infinity=False
        )
    if isinstance(kind, mi.BoolType):
        return st.booleans()
    if isinstance(kind, mi.NoneType):
        return st.none()
    if isinstance(kind, mi.LiteralType):
        return st.sampled_from(kind.values)
    if isinstance(kind, mi.EnumType):
        return st.sampled_from(list(kind.cls))
    if isinstance(kind, mi.ListType):
        return st.lists(
            values_of(kind.item_type),
            min_size=kind.min_length or 0,
            max_size=min(MAX_LIST_ITEMS, kind.max_length or MAX_LIST_ITEMS),
        )
    if isinstance(kind, mi.DictType):
        if kind.min_length is not None or kind.max_length is not None:
            raise TypeError(f"no strategy for a bounded dict: {kind}")
        return st.dictionaries(
            values_of(kind.key_type), values_of(kind.value_type), max_size=MAX_LIST_ITEMS
        )
    if isinstance(kind, mi.UnionType):
        return st.one_of([values_of(member) for member in kind.types])
    raise TypeError(f"no strategy for {kind}: teach values_of this kind of field")


@functools.cache
def structs_of(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Instances of a frame or a nested Part; fields with defaults are sometimes left out, so
    the defaults are exercised too."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    required = {field.name: values_of(field.type) for field in info.fields if field.required}
    optional = {field.name: values_of(field.type) for field in info.fields if not field.required}
    return st.fixed_dictionaries(required, optional=optional).map(lambda kwargs: cls(**kwargs))


inbound_frames: st.SearchStrategy[Inbound] = st.one_of([structs_of(c) for c in INBOUND_CLASSES])
outbound_frames: st.SearchStrategy[Outbound] = st.one_of([structs_of(c) for c in OUTBOUND_CLASSES])


def as_wire_dict(value: Any) -> Any:
    """What goes on the wire for `value`: a frame as a map with its tag as `type` and then every
    field (defaults spelled out), a nested Part as a map of its fields, enums as their values,
    lists item by item."""
    if isinstance(value, msgspec.Struct):
        config = value.__struct_config__
        fields = {name: as_wire_dict(getattr(value, name)) for name in value.__struct_fields__}
        if config.tag_field is None:
            return fields
        return {config.tag_field: config.tag, **fields}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [as_wire_dict(item) for item in value]
    if isinstance(value, dict):
        return {key: as_wire_dict(item) for key, item in value.items()}
    return value


def field_names(classes: tuple[type[Frame], ...]) -> list[str]:
    """Every field name the classes use, nested Parts' excluded."""
    return sorted({name for cls in classes for name in cls.__struct_fields__})


def required_fields(cls: type[msgspec.Struct]) -> list[str]:
    """The fields a frame cannot be decoded without."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return [field.name for field in info.fields if field.required]


# A minimal valid frame of each inbound type as a client writes it: required fields and an id.
MINIMAL_INBOUND: dict[str, dict[str, Any]] = {
    "hello": {"type": "hello", "id": "f1", "token": "t"},
    "renew": {"type": "renew", "id": "f1", "token": "t"},
    "ping": {"type": "ping", "id": "f1"},
    "quote": {"type": "quote", "id": "f1", "department": "general"},
    "join": {
        "type": "join",
        "id": "f1",
        "department": "general",
        "intake": {"symptoms": "a dry cough for a week"},
        "consent": True,
        "notice_acknowledged": True,
    },
    "leave": {"type": "leave", "id": "f1"},
    "set_status": {"type": "set_status", "id": "f1", "status": "available"},
    "take_next": {"type": "take_next", "id": "f1"},
    "accept": {"type": "accept", "id": "f1", "consultation": "c1"},
    "end": {"type": "end", "id": "f1", "consultation": "c1"},
    "transfer": {"type": "transfer", "id": "f1", "consultation": "c1"},
    "patient_history": {"type": "patient_history", "id": "f1", "consultation": "c1"},
    "send": {"type": "send", "id": "f1", "consultation": "c1", "client_msg_id": "m1", "text": "hi"},
    "typing": {"type": "typing", "id": "f1", "consultation": "c1"},
    "read": {"type": "read", "id": "f1", "consultation": "c1", "seq": 3},
    "delivered": {"type": "delivered", "id": "f1", "consultation": "c1", "seq": 3},
    "fetch": {"type": "fetch", "id": "f1", "consultation": "c1"},
    "open": {"type": "open", "id": "f1", "consultation": "c1"},
    "list_consultations": {"type": "list_consultations", "id": "f1"},
    "list_audit": {"type": "list_audit", "id": "f1"},
}


def pack(value: Any, encoding: Encoding) -> bytes:
    """`value` as a client outside this codebase would put it on the wire."""
    if encoding is Encoding.JSON:
        return json.dumps(value).encode()
    return msgpack.packb(value)


def decode_error(data: bytes | str, encoding: Encoding) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode(data, encoding)
    assert caught.value.code is ErrorCode.BAD_FRAME
    assert caught.value.message
    return caught.value


def minimal(type_name: str, **changes: Any) -> dict[str, Any]:
    """The minimal frame of `type_name` with `changes` applied (a value of ... deletes)."""
    value = {**MINIMAL_INBOUND[type_name], **changes}
    return {key: item for key, item in value.items() if item is not ...}
