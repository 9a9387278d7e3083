"""The codec: both encodings give the same frames, and bad input only ever gives BAD_FRAME.

Inbound frames are encoded with msgspec or with the independent `json` and `msgpack` libraries
(what a browser or a msgpack client would send); outbound frames are read back with `json` and
`msgpack`, so a bug shared by msgspec's encoder and decoder cannot hide.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatsvc.protocol.codec import SUBPROTOCOLS, Encoding, decode, encode
from chatsvc.protocol.errors import ErrorCode, ProtocolError
from chatsvc.protocol.frames import (
    MAX_FRAME_ID_CHARS,
    PROTOCOL_VERSION,
    Error,
    Hello,
    Inbound,
    Outbound,
    Ping,
    Pong,
    Welcome,
)

# msgpack integers are 64-bit: the widest range both encodings carry.
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
# `_frame_id` cuts the id it echoes in an error to this many characters.
REF_LIMIT = 128

# Frame ids are bounded (MAX_FRAME_ID_CHARS); a longer one is a bad frame (tested below).
ids = st.none() | st.text(max_size=MAX_FRAME_ID_CHARS)
msgpack_ints = st.integers(min_value=INT64_MIN, max_value=UINT64_MAX)

inbound_frames: st.SearchStrategy[Inbound] = st.one_of(
    st.builds(Hello, token=st.text(), protocol=msgpack_ints, id=ids),
    st.builds(Ping, id=ids),
)
outbound_frames: st.SearchStrategy[Outbound] = st.one_of(
    st.builds(
        Welcome,
        protocol=msgpack_ints,
        role=st.text(),
        user_id=st.text(),
        expires_at=msgpack_ints,
        ref=ids,
    ),
    st.builds(Pong, ref=ids),
    st.builds(Error, code=st.sampled_from(ErrorCode), message=st.text(), ref=ids),
)

# Plain values as a JSON or msgpack client could send them, biased towards frame-like maps.
scalars = (
    st.none()
    | st.booleans()
    | msgpack_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
plain_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
frame_like_maps = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["hello", "ping", "welcome", "pong", "send", ""]) | plain_values,
        "id": st.text() | plain_values,
        "token": st.text() | plain_values,
        "protocol": msgpack_ints | plain_values,
    },
).flatmap(
    lambda known: st.dictionaries(st.text(max_size=8), plain_values, max_size=2).map(
        lambda extra: {**extra, **known}
    )
)
client_values = frame_like_maps | plain_values


def pack(value: Any, encoding: Encoding) -> bytes:
    """`value` as a client outside this codebase would put it on the wire."""
    if encoding is Encoding.JSON:
        return json.dumps(value).encode()
    return msgpack.packb(value)


def unpack(data: bytes, encoding: Encoding) -> Any:
    if encoding is Encoding.JSON:
        return json.loads(data)
    return msgpack.unpackb(data)


def decode_error(data: bytes | str, encoding: Encoding) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode(data, encoding)
    return caught.value


def as_wire_dict(frame: Outbound) -> dict[str, Any]:
    """What a client should read: the tag as `type`, then every field, enums as their values."""
    fields = {name: getattr(frame, name) for name in frame.__struct_fields__}
    return {"type": frame.__struct_config__.tag, **fields}


# Round trips


@given(inbound_frames)
def test_inbound_frame_round_trips_through_json_and_msgpack_to_equal_frames(
    frame: Inbound,
) -> None:
    from_json = decode(msgspec.json.encode(frame), Encoding.JSON)
    from_msgpack = decode(msgspec.msgpack.encode(frame), Encoding.MSGPACK)

    assert from_json == frame
    assert from_msgpack == frame
    assert from_json == from_msgpack
    assert type(from_json) is type(from_msgpack) is type(frame)


@given(inbound_frames)
def test_inbound_json_decodes_the_same_from_text_as_from_bytes(frame: Inbound) -> None:
    data = msgspec.json.encode(frame)

    assert decode(data.decode(), Encoding.JSON) == decode(data, Encoding.JSON) == frame


@given(inbound_frames)
def test_inbound_frame_packed_by_independent_libraries_decodes_to_the_same_frame(
    frame: Inbound,
) -> None:
    value = msgspec.to_builtins(frame)

    assert decode(pack(value, Encoding.JSON), Encoding.JSON) == frame
    assert decode(pack(value, Encoding.MSGPACK), Encoding.MSGPACK) == frame


@given(st.integers())
def test_json_hello_carries_protocol_integers_of_any_size(protocol: int) -> None:
    frame = Hello(token="t", protocol=protocol)

    assert decode(msgspec.json.encode(frame), Encoding.JSON) == frame


@given(outbound_frames)
def test_outbound_frame_reads_the_same_to_msgpack_and_json_clients(frame: Outbound) -> None:
    as_msgpack = msgpack.unpackb(encode(frame, Encoding.MSGPACK))
    as_json = json.loads(encode(frame, Encoding.JSON))

    assert as_msgpack == as_json
    assert as_json == as_wire_dict(frame)


def test_outbound_frames_spell_out_defaults_and_error_codes_as_strings() -> None:
    error = Error(code=ErrorCode.AUTH_FAILED, message="no")
    welcome = Welcome(protocol=1, role="doctor", user_id="d1", expires_at=10, ref="h1")

    assert json.loads(encode(error, Encoding.JSON)) == {
        "type": "error",
        "code": "auth_failed",
        "message": "no",
        "ref": None,
    }
    assert msgpack.unpackb(encode(welcome, Encoding.MSGPACK)) == {
        "type": "welcome",
        "protocol": 1,
        "role": "doctor",
        "user_id": "d1",
        "expires_at": 10,
        "ref": "h1",
    }
    assert msgpack.unpackb(encode(Pong(), Encoding.MSGPACK)) == {"type": "pong", "ref": None}


def test_json_encoding_is_utf8_text() -> None:
    data = encode(Error(code=ErrorCode.BAD_FRAME, message="été ✓"), Encoding.JSON)

    assert json.loads(data.decode("utf-8"))["message"] == "été ✓"


@pytest.mark.parametrize("encoding", list(Encoding))
def test_minimal_frames_take_their_defaults(encoding: Encoding) -> None:
    assert decode(pack({"type": "ping"}, encoding), encoding) == Ping(id=None)
    assert decode(pack({"type": "hello", "token": "t"}, encoding), encoding) == Hello(
        token="t", protocol=PROTOCOL_VERSION, id=None
    )


def test_subprotocols_offer_json_first_then_msgpack() -> None:
    assert SUBPROTOCOLS == ("chatsvc.json", "chatsvc.msgpack")
    assert [Encoding(name) for name in SUBPROTOCOLS] == [Encoding.JSON, Encoding.MSGPACK]


# Fuzzing: nothing but ProtocolError(BAD_FRAME) ever leaves `decode`


def assert_decodes_or_bad_frame(data: bytes | str, encoding: Encoding) -> Inbound | None:
    try:
        frame = decode(data, encoding)
    except ProtocolError as error:
        assert error.code is ErrorCode.BAD_FRAME
        assert error.ref is None or isinstance(error.ref, str)
        return None
    assert isinstance(frame, Hello | Ping)
    return frame


@settings(max_examples=500)
@given(st.binary())
def test_arbitrary_bytes_decode_to_a_frame_or_bad_frame_in_both_encodings(data: bytes) -> None:
    assert_decodes_or_bad_frame(data, Encoding.JSON)
    assert_decodes_or_bad_frame(data, Encoding.MSGPACK)


@settings(max_examples=500)
@given(st.text())
def test_arbitrary_text_decodes_to_a_frame_or_bad_frame_as_json(text: str) -> None:
    assert_decodes_or_bad_frame(text, Encoding.JSON)
    assert_decodes_or_bad_frame(text.encode(), Encoding.JSON)


@settings(max_examples=500)
@given(client_values, st.sampled_from(Encoding))
def test_any_client_value_decodes_to_its_frame_or_bad_frame_naming_its_string_id(
    value: Any, encoding: Encoding
) -> None:
    frame = assert_decodes_or_bad_frame(pack(value, encoding), encoding)

    if frame is not None:
        assert isinstance(value, dict)
        assert set(value) <= {"type", "id", "token", "protocol"}
        assert value["type"] == type(frame).__struct_config__.tag
        assert frame.id == value.get("id")
        return
    error = decode_error(pack(value, encoding), encoding)
    has_string_id = isinstance(value, dict) and isinstance(value.get("id"), str)
    assert error.ref == (value["id"][:REF_LIMIT] if has_string_id else None)


# Bad frames, one kind at a time

BAD_FRAMES_WITH_STRING_ID = [
    pytest.param({"type": "shout", "id": "f1"}, id="unknown-type"),
    pytest.param({"type": "welcome", "id": "f1"}, id="server-frame-sent-by-client"),
    pytest.param({"type": "ping", "id": "f1", "extra": 1}, id="unknown-field"),
    pytest.param({"type": "hello", "id": "f1", "token": "t", "role": "doctor"}, id="extra-claim"),
    pytest.param({"type": "hello", "id": "f1", "token": 5}, id="token-not-string"),
    pytest.param({"type": "hello", "id": "f1", "token": None}, id="token-null"),
    pytest.param({"type": "hello", "id": "f1", "token": "t", "protocol": "1"}, id="protocol-str"),
    pytest.param({"type": "hello", "id": "f1", "token": "t", "protocol": 1.5}, id="protocol-float"),
    pytest.param({"type": "hello", "id": "f1", "token": "t", "protocol": True}, id="protocol-bool"),
    pytest.param({"type": "hello", "id": "f1"}, id="token-missing"),
    pytest.param({"id": "f1"}, id="type-missing"),
    pytest.param({"type": 1, "id": "f1"}, id="type-not-string"),
]


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("value", BAD_FRAMES_WITH_STRING_ID)
def test_invalid_frame_is_bad_frame_referring_to_its_id(
    value: dict[str, Any], encoding: Encoding
) -> None:
    error = decode_error(pack(value, encoding), encoding)

    assert error.code is ErrorCode.BAD_FRAME
    assert error.ref == "f1"
    assert error.message


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"type": "shout"}, id="no-id"),
        pytest.param({"type": "ping", "id": 7}, id="int-id"),
        pytest.param({"type": "ping", "id": ["f1"]}, id="list-id"),
        pytest.param({"type": "ping", "id": {"id": "f1"}}, id="map-id"),
        pytest.param(["ping", "f1"], id="array"),
        pytest.param("ping", id="string"),
        pytest.param(None, id="null"),
    ],
)
def test_invalid_frame_without_a_string_id_is_bad_frame_without_ref(
    value: Any, encoding: Encoding
) -> None:
    error = decode_error(pack(value, encoding), encoding)

    assert error.code is ErrorCode.BAD_FRAME
    assert error.ref is None


@pytest.mark.parametrize("encoding", list(Encoding))
def test_ref_of_a_bad_frame_is_cut_to_128_characters(encoding: Encoding) -> None:
    long_id = "i" * 300

    error = decode_error(pack({"type": "shout", "id": long_id}, encoding), encoding)

    assert error.ref == long_id[:REF_LIMIT]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(b"", Encoding.JSON, id="json-empty"),
        pytest.param("{", Encoding.JSON, id="json-truncated"),
        pytest.param('{"type": "ping", "id": "f1"', Encoding.JSON, id="json-unclosed-with-id"),
        pytest.param("{'type': 'ping'}", Encoding.JSON, id="json-single-quotes"),
        pytest.param(b"\xff{}", Encoding.JSON, id="json-bad-utf8-outside-strings"),
        pytest.param('{"type": "ping"} x', Encoding.JSON, id="json-trailing-data"),
        pytest.param(b"", Encoding.MSGPACK, id="msgpack-empty"),
        pytest.param(b"\xc1", Encoding.MSGPACK, id="msgpack-never-used-byte"),
        pytest.param(b"\x82\xa4type\xa4ping\xa2id", Encoding.MSGPACK, id="msgpack-truncated"),
        pytest.param(
            msgpack.packb({"type": "ping", "id": "f1"}) + b"\x00",
            Encoding.MSGPACK,
            id="msgpack-trailing-data",
        ),
    ],
)
def test_undecodable_input_is_bad_frame_without_ref(data: bytes | str, encoding: Encoding) -> None:
    error = decode_error(data, encoding)

    assert error.code is ErrorCode.BAD_FRAME
    assert error.ref is None


def test_json_frame_sent_to_a_msgpack_connection_is_bad_frame() -> None:
    error = decode_error(json.dumps({"type": "ping", "id": "f1"}).encode(), Encoding.MSGPACK)

    assert error.code is ErrorCode.BAD_FRAME


# Hostile input that makes msgspec raise something other than DecodeError


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(b'{"type": "ping", "id": "\xff"}', Encoding.JSON, id="json-id"),
        pytest.param(b'{"type": "shout", "x": "\xed\xa0\x80"}', Encoding.JSON, id="json-surrogate"),
        pytest.param(b"\x82\xa4type\xa4ping\xa2id\xa1\xff", Encoding.MSGPACK, id="msgpack-id"),
        pytest.param(b"\x82\xa4type\xa5shout\xa1x\xa1\xff", Encoding.MSGPACK, id="msgpack-field"),
    ],
)
def test_invalid_utf8_inside_a_string_is_bad_frame(data: bytes, encoding: Encoding) -> None:
    error = decode_error(data, encoding)

    assert error.code is ErrorCode.BAD_FRAME
    assert error.ref is None


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("depth", [1_000, 20_000])
def test_deeply_nested_frame_is_bad_frame(encoding: Encoding, depth: int) -> None:
    # 1,000 levels is 2 KB, far under max_frame_bytes: enough to exhaust the recursion limit.
    if encoding is Encoding.JSON:
        data = b'{"type": "ping", "id": "f1", "x": ' + b"[" * depth + b"]" * depth + b"}"
    else:
        data = b"\x83\xa4type\xa4ping\xa2id\xa2f1\xa1x" + b"\x91" * depth + b"\xc0"

    error = decode_error(data, encoding)

    assert error.code is ErrorCode.BAD_FRAME


@pytest.mark.parametrize("encoding", list(Encoding))
def test_deeply_nested_top_level_value_is_bad_frame(encoding: Encoding) -> None:
    depth = 5_000
    data = b"[" * depth + b"]" * depth if encoding is Encoding.JSON else b"\x91" * depth + b"\xc0"

    assert decode_error(data, encoding).code is ErrorCode.BAD_FRAME


def test_an_id_over_the_bound_is_a_bad_frame_referred_to_by_its_truncated_id() -> None:
    long_id = "x" * (MAX_FRAME_ID_CHARS + 1)
    with pytest.raises(ProtocolError) as caught:
        decode(json.dumps({"type": "ping", "id": long_id}), Encoding.JSON)
    assert caught.value.code is ErrorCode.BAD_FRAME
    assert caught.value.ref == long_id[:MAX_FRAME_ID_CHARS]
