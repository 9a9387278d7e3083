"""The codec's refusals: bad input of every kind gives ProtocolError(BAD_FRAME) and nothing else,
with the frame's id as `ref` whenever the id can be read.

Hand-made bad frames (missing, wrongly typed and out-of-bound fields, unknown types, oversize
ids, undecodable and hostile bytes) and fuzzing: arbitrary bytes and text, and maps that look
like frames of every type, valid ones changed a little included.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatsvc.protocol.codec import Encoding, decode, decode_outbound
from chatsvc.protocol.errors import ErrorCode, ProtocolError
from chatsvc.protocol.frames import MAX_FRAME_ID_CHARS, Inbound
from tests.chatsvc.wire import (
    INBOUND_CLASSES,
    INBOUND_TYPES,
    INT64_MIN,
    MINIMAL_INBOUND,
    OUTBOUND_CLASSES,
    OUTBOUND_TYPES,
    UINT64_MAX,
    as_wire_dict,
    decode_error,
    field_names,
    minimal,
    pack,
    required_fields,
    structs_of,
    tag_of,
)

ALL_TYPES = sorted(set(INBOUND_TYPES) | set(OUTBOUND_TYPES))
SERVER_ONLY_TYPES = sorted(set(OUTBOUND_TYPES) - set(INBOUND_TYPES))
# `_frame_id` cuts the id it echoes in an error to this many characters.
REF_LIMIT = 128

msgpack_ints = st.integers(min_value=INT64_MIN, max_value=UINT64_MAX)


# Fuzzing: nothing but ProtocolError(BAD_FRAME) ever leaves `decode`

# Plain values as a JSON or msgpack client could send them.
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
type_names = st.sampled_from([*ALL_TYPES, "", "shout"])
# Maps with the keys frames use, each present or not, holding anything.
frame_like_maps = st.fixed_dictionaries(
    {},
    optional={
        "type": type_names | plain_values,
        **{name: plain_values for name in field_names(INBOUND_CLASSES + OUTBOUND_CLASSES)},
    },
).flatmap(
    lambda known: st.dictionaries(st.text(max_size=8), plain_values, max_size=2).map(
        lambda extra: {**extra, **known}
    )
)


def _mutations(wire: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`wire` with some keys dropped, some values replaced or added, maybe another type name."""
    keys = sorted(wire)
    return st.tuples(
        st.sets(st.sampled_from(keys), max_size=2),
        st.dictionaries(
            st.sampled_from([*keys, *field_names(INBOUND_CLASSES)]), plain_values, max_size=2
        ),
        st.none() | type_names,
    ).map(
        lambda change: {
            **{key: value for key, value in wire.items() if key not in change[0]},
            **change[1],
            **({} if change[2] is None else {"type": change[2]}),
        }
    )


# Valid frames of every type (server frames too), then changed a little: close to the edge.
near_valid_maps = (
    st.sampled_from(INBOUND_CLASSES + OUTBOUND_CLASSES)
    .flatmap(structs_of)
    .map(as_wire_dict)
    .flatmap(_mutations)
)
client_values = near_valid_maps | frame_like_maps | plain_values


def assert_decodes_or_bad_frame(data: bytes | str, encoding: Encoding) -> Inbound | None:
    try:
        frame = decode(data, encoding)
    except ProtocolError as error:
        assert error.code is ErrorCode.BAD_FRAME
        assert error.ref is None or isinstance(error.ref, str)
        return None
    assert isinstance(frame, INBOUND_CLASSES)
    return frame


def assert_carries(sent: Any, wire: Any) -> None:
    """Every value the client sent is in the decoded frame (which may add defaults)."""
    if isinstance(sent, dict):
        assert isinstance(wire, dict)
        for key, value in sent.items():
            assert_carries(value, wire[key])
    elif isinstance(sent, list):
        assert isinstance(wire, list) and len(wire) == len(sent)
        for value, item in zip(sent, wire, strict=True):
            assert_carries(value, item)
    else:
        assert type(sent) is type(wire) and sent == wire


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
        assert value["type"] == tag_of(type(frame))
        assert_carries(value, as_wire_dict(frame))
        return
    error = decode_error(pack(value, encoding), encoding)
    has_string_id = isinstance(value, dict) and isinstance(value.get("id"), str)
    assert error.ref == (value["id"][:REF_LIMIT] if has_string_id else None)


# Bad frames, one kind at a time

BAD_FRAMES_WITH_STRING_ID = [
    pytest.param({"type": "shout", "id": "f1"}, id="unknown-type"),
    pytest.param({"type": "", "id": "f1"}, id="empty-type"),
    pytest.param({"type": "Ping", "id": "f1"}, id="type-is-case-sensitive"),
    pytest.param({"type": "ping", "id": "f1", "extra": 1}, id="unknown-field"),
    pytest.param({"type": "hello", "id": "f1", "token": "t", "role": "doctor"}, id="extra-claim"),
    pytest.param({"type": "typing", "id": "f1", "consultation": "c1", "role": "doctor"}, id="typ"),
    pytest.param({"id": "f1"}, id="type-missing"),
    pytest.param({"type": 1, "id": "f1"}, id="type-not-string"),
    pytest.param({"type": None, "id": "f1"}, id="type-null"),
    *(
        pytest.param({"type": name, "id": "f1"}, id=f"server-frame-{name}")
        for name in SERVER_ONLY_TYPES
    ),
]


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("value", BAD_FRAMES_WITH_STRING_ID)
def test_invalid_frame_is_bad_frame_referring_to_its_id(
    value: dict[str, Any], encoding: Encoding
) -> None:
    assert decode_error(pack(value, encoding), encoding).ref == "f1"


REQUIRED_FIELDS = [
    pytest.param(tag_of(cls), name, id=f"{tag_of(cls)}-{name}")
    for cls in INBOUND_CLASSES
    for name in required_fields(cls)
]


def test_every_required_field_is_in_the_minimal_frames() -> None:
    assert REQUIRED_FIELDS  # the table below is not empty by accident
    for param in REQUIRED_FIELDS:
        type_name, name = param.values
        assert name in MINIMAL_INBOUND[type_name]


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize(("type_name", "name"), REQUIRED_FIELDS)
def test_frame_missing_a_required_field_is_bad_frame_naming_it(
    type_name: str, name: str, encoding: Encoding
) -> None:
    error = decode_error(pack(minimal(type_name, **{name: ...}), encoding), encoding)

    assert error.ref == "f1"
    assert f"`{name}`" in error.message


# A value of the wrong type for each kind of field in the minimal frames.
WRONG_TYPE = {str: 7, bool: "yes", int: "3", dict: "a cough"}
MINIMAL_FIELDS = [
    pytest.param(type_name, name, id=f"{type_name}-{name}")
    for type_name, value in MINIMAL_INBOUND.items()
    for name in value
    if name not in ("type", "id")
]


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize(("type_name", "name"), MINIMAL_FIELDS)
def test_field_of_the_wrong_type_is_bad_frame_naming_it(
    type_name: str, name: str, encoding: Encoding
) -> None:
    wrong = WRONG_TYPE[type(MINIMAL_INBOUND[type_name][name])]
    for bad in (wrong, None, [], [wrong]):
        error = decode_error(pack(minimal(type_name, **{name: bad}), encoding), encoding)

        assert error.ref == "f1"
        assert f"$.{name}" in error.message, bad


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize(
    ("type_name", "changes", "where"),
    [
        pytest.param("hello", {"protocol": "1"}, "$.protocol", id="hello-protocol-str"),
        pytest.param("hello", {"protocol": 1.5}, "$.protocol", id="hello-protocol-float"),
        pytest.param("hello", {"protocol": 1.0}, "$.protocol", id="hello-protocol-whole-float"),
        pytest.param("hello", {"protocol": True}, "$.protocol", id="hello-protocol-bool"),
        pytest.param("hello", {"lang": 5}, "$.lang", id="hello-lang-int"),
        pytest.param("end", {"summary": None}, "$.summary", id="end-summary-null"),
        pytest.param("transfer", {"department": 5}, "$.department", id="transfer-dept-int"),
        pytest.param("transfer", {"doctor": ["d2"]}, "$.doctor", id="transfer-doctor-list"),
        pytest.param("fetch", {"after_seq": "0"}, "$.after_seq", id="fetch-after-str"),
        pytest.param("fetch", {"epoch": 1}, "$.epoch", id="fetch-epoch-int"),
        pytest.param("fetch", {"limit": 10.0}, "$.limit", id="fetch-limit-float"),
        pytest.param("list_audit", {"before": 3}, "$.before", id="audit-before-int"),
        pytest.param(
            "list_consultations", {"department": False}, "$.department", id="list-dept-bool"
        ),
        pytest.param("set_status", {"status": "busy"}, "$.status", id="status-unknown"),
        pytest.param("set_status", {"status": "Available"}, "$.status", id="status-case"),
        pytest.param(
            "join",
            {"intake": {"symptoms": "cough", "age_band": "adult"}},
            "$.intake.age_band",
            id="intake-age-band",
        ),
        pytest.param(
            "join",
            {"intake": {"symptoms": "cough", "duration": "years"}},
            "$.intake.duration",
            id="intake-duration",
        ),
        pytest.param("join", {"intake": {"symptoms": 5}}, "$.intake.symptoms", id="symptoms-int"),
        pytest.param("join", {"intake": {}}, "$.intake", id="intake-empty"),
        pytest.param(
            "join",
            {"intake": {"symptoms": "cough", "name": "Ana"}},
            "$.intake",
            id="intake-unknown-field",
        ),
        pytest.param("join", {"consent": 1}, "$.consent", id="join-consent-int"),
        pytest.param("join", {"consent": "true"}, "$.consent", id="join-consent-str"),
    ],
)
def test_optional_or_nested_field_of_the_wrong_shape_is_bad_frame_naming_it(
    type_name: str, changes: dict[str, Any], where: str, encoding: Encoding
) -> None:
    error = decode_error(pack(minimal(type_name, **changes), encoding), encoding)

    assert error.ref == "f1"
    assert where in error.message


# (frame type, changed fields, decodes?): each bound at its edge and one past it.
BOUNDS = [
    ("accept", {"consultation": "c" * 64}, True),
    ("accept", {"consultation": "c" * 65}, False),
    ("accept", {"consultation": ""}, False),
    ("transfer", {"doctor": "d" * 64, "department": "p" * 32}, True),
    ("transfer", {"doctor": "d" * 65}, False),
    ("transfer", {"department": "p" * 33}, False),
    ("quote", {"department": "p" * 32}, True),
    ("quote", {"department": "p" * 33}, False),
    ("quote", {"department": ""}, False),
    ("list_consultations", {"department": "p" * 33}, False),
    ("send", {"client_msg_id": "m" * MAX_FRAME_ID_CHARS}, True),
    ("send", {"client_msg_id": "m" * (MAX_FRAME_ID_CHARS + 1)}, False),
    ("send", {"client_msg_id": ""}, False),
    ("send", {"text": ""}, False),
    ("send", {"text": "x" * 100_000}, True),  # the config's max_message_chars: the gateway's
    ("join", {"intake": {"symptoms": "s" * 2000}}, True),
    ("join", {"intake": {"symptoms": "s" * 2001}}, False),
    ("join", {"intake": {"symptoms": ""}}, False),
    ("end", {"summary": "s" * 4000}, True),
    ("end", {"summary": "s" * 4001}, False),
    ("hello", {"lang": "x" * 35}, True),
    ("hello", {"lang": "x" * 36}, False),
    ("read", {"seq": 0}, True),
    ("read", {"seq": -1}, False),
    ("delivered", {"seq": 0}, True),
    ("delivered", {"seq": -1}, False),
    ("delivered", {"seq": 1.5}, False),
    ("fetch", {"after_seq": -1}, False),
    ("fetch", {"limit": 1}, True),
    ("fetch", {"limit": 500}, True),
    ("fetch", {"limit": 0}, False),
    ("fetch", {"limit": 501}, False),
    ("list_audit", {"limit": 500}, True),
    ("list_audit", {"limit": 501}, False),
    ("list_audit", {"limit": 0}, False),
    ("ping", {"id": "i" * MAX_FRAME_ID_CHARS}, True),
    ("ping", {"id": ""}, True),
]


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize(
    ("type_name", "changes", "decodes"),
    [
        pytest.param(*row, id=f"{row[0]}-{'ok' if row[2] else 'bad'}-{i}")
        for i, row in enumerate(BOUNDS)
    ],
)
def test_field_bounds_hold_at_their_edges(
    type_name: str, changes: dict[str, Any], decodes: bool, encoding: Encoding
) -> None:
    data = pack(minimal(type_name, **changes), encoding)
    if decodes:
        frame = decode(data, encoding)
        assert_carries(changes, as_wire_dict(frame))
        return
    error = decode_error(data, encoding)
    assert error.ref == changes.get("id", "f1")


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("type_name", INBOUND_TYPES)
def test_oversize_id_is_bad_frame_referred_to_by_its_truncated_id(
    type_name: str, encoding: Encoding
) -> None:
    long_id = "x" * (MAX_FRAME_ID_CHARS + 1)

    error = decode_error(pack(minimal(type_name, id=long_id), encoding), encoding)

    assert error.ref == long_id[:REF_LIMIT]
    assert "$.id" in error.message


@pytest.mark.parametrize("encoding", list(Encoding))
def test_ref_of_a_bad_frame_is_cut_to_128_characters(encoding: Encoding) -> None:
    long_id = "i" * 300

    error = decode_error(pack({"type": "shout", "id": long_id}, encoding), encoding)

    assert error.ref == long_id[:REF_LIMIT]


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"type": "shout"}, id="no-id"),
        pytest.param({"type": "ping", "id": 7}, id="int-id"),
        pytest.param({"type": "ping", "id": ["f1"]}, id="list-id"),
        pytest.param({"type": "ping", "id": {"id": "f1"}}, id="map-id"),
        pytest.param({"type": "send", "consultation": "c1", "id": None}, id="null-id"),
        pytest.param(["ping", "f1"], id="array"),
        pytest.param("ping", id="string"),
        pytest.param(None, id="null"),
    ],
)
def test_invalid_frame_without_a_string_id_is_bad_frame_without_ref(
    value: Any, encoding: Encoding
) -> None:
    assert decode_error(pack(value, encoding), encoding).ref is None


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
    assert decode_error(data, encoding).ref is None


def test_json_frame_sent_to_a_msgpack_connection_is_bad_frame() -> None:
    decode_error(json.dumps({"type": "ping", "id": "f1"}).encode(), Encoding.MSGPACK)


def test_text_sent_to_a_msgpack_connection_is_bad_frame() -> None:
    decode_error(json.dumps({"type": "ping", "id": "f1"}), Encoding.MSGPACK)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(b"", Encoding.JSON, id="json-empty"),
        pytest.param(json.dumps({"type": "welcome"}), Encoding.JSON, id="json-missing-fields"),
        pytest.param(json.dumps({"type": "shout"}), Encoding.JSON, id="json-unknown-type"),
        pytest.param(msgpack.packb({"type": "pong", "x": 1}), Encoding.MSGPACK, id="mp-unknown"),
        pytest.param(b"\xc1", Encoding.MSGPACK, id="msgpack-never-used-byte"),
        pytest.param("text", Encoding.MSGPACK, id="msgpack-given-text"),
    ],
)
def test_decode_outbound_refuses_bad_server_frames_with_bad_frame(
    data: bytes | str, encoding: Encoding
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_outbound(data, encoding)

    assert caught.value.code is ErrorCode.BAD_FRAME
    assert caught.value.ref is None


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
    assert decode_error(data, encoding).ref is None


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("depth", [1_000, 20_000])
def test_deeply_nested_frame_is_bad_frame(encoding: Encoding, depth: int) -> None:
    # 1,000 levels is 2 KB, far under max_frame_bytes: enough to exhaust the recursion limit.
    if encoding is Encoding.JSON:
        data = b'{"type": "ping", "id": "f1", "x": ' + b"[" * depth + b"]" * depth + b"}"
    else:
        data = b"\x83\xa4type\xa4ping\xa2id\xa2f1\xa1x" + b"\x91" * depth + b"\xc0"

    decode_error(data, encoding)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_deeply_nested_intake_is_bad_frame(encoding: Encoding) -> None:
    depth = 5_000
    if encoding is Encoding.JSON:
        data = json.dumps(minimal("join", intake={"symptoms": "x"})).encode()
        data = data.replace(b'"x"', b"[" * depth + b'"x"' + b"]" * depth)
    else:
        data = b"\x82\xa4type\xa4join\xa6intake" + b"\x91" * depth + b"\xc0"

    decode_error(data, encoding)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_deeply_nested_top_level_value_is_bad_frame(encoding: Encoding) -> None:
    depth = 5_000
    data = b"[" * depth + b"]" * depth if encoding is Encoding.JSON else b"\x91" * depth + b"\xc0"

    decode_error(data, encoding)
