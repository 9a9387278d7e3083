"""The codec: both encodings give the same frames, and every frame type reads back as written.

Every inbound and every outbound frame type is generated (strategies in `tests.chatsvc.wire`).
Frames are encoded with msgspec or with the independent `json` and `msgpack` libraries (what a
browser or a msgpack client would send), and read back with `json` and `msgpack`, so a bug
shared by msgspec's encoder and decoder cannot hide. What the codec refuses, and the fuzzing,
are in test_codec_refusals.py.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatsvc.protocol.codec import SUBPROTOCOLS, Encoding, decode, decode_outbound, encode
from chatsvc.protocol.errors import ErrorCode, ProtocolError
from chatsvc.protocol.frames import (
    PROTOCOL_VERSION,
    ConsultationView,
    DeliveryReceipt,
    DepartmentInfo,
    EmergencyNotice,
    End,
    Error,
    Fetch,
    Frame,
    Hello,
    Inbound,
    IntakeForm,
    Join,
    ListAudit,
    MarkDelivered,
    MessageEntry,
    Messages,
    Ping,
    Pong,
    Welcome,
)
from tests.chatsvc.wire import (
    INBOUND_CLASSES,
    INBOUND_TYPES,
    MINIMAL_INBOUND,
    OUTBOUND_CLASSES,
    OUTBOUND_TYPES,
    as_wire_dict,
    decode_error,
    minimal,
    pack,
    structs_of,
    tag_of,
)


def test_wire_type_names_are_the_published_ones() -> None:
    assert [tag_of(cls) for cls in INBOUND_CLASSES] == INBOUND_TYPES
    assert [tag_of(cls) for cls in OUTBOUND_CLASSES] == OUTBOUND_TYPES
    assert sorted(MINIMAL_INBOUND) == sorted(INBOUND_TYPES)


# Round trips, one frame type at a time


@pytest.mark.parametrize("cls", INBOUND_CLASSES, ids=tag_of)
@given(data=st.data())
def test_inbound_frame_round_trips_through_json_and_msgpack_to_equal_frames(
    cls: type[Frame], data: st.DataObject
) -> None:
    frame = data.draw(structs_of(cls))

    from_json = decode(encode(frame, Encoding.JSON), Encoding.JSON)
    from_msgpack = decode(encode(frame, Encoding.MSGPACK), Encoding.MSGPACK)

    assert from_json == frame
    assert from_msgpack == frame
    assert type(from_json) is type(from_msgpack) is cls


@pytest.mark.parametrize("cls", INBOUND_CLASSES, ids=tag_of)
@given(data=st.data())
def test_inbound_json_decodes_the_same_from_text_as_from_bytes(
    cls: type[Frame], data: st.DataObject
) -> None:
    frame = data.draw(structs_of(cls))
    raw = encode(frame, Encoding.JSON)

    assert decode(raw.decode(), Encoding.JSON) == decode(raw, Encoding.JSON) == frame


@pytest.mark.parametrize("cls", INBOUND_CLASSES, ids=tag_of)
@given(data=st.data())
def test_inbound_frame_packed_by_independent_libraries_decodes_to_the_same_frame(
    cls: type[Frame], data: st.DataObject
) -> None:
    frame = data.draw(structs_of(cls))
    value = as_wire_dict(frame)

    assert decode(pack(value, Encoding.JSON), Encoding.JSON) == frame
    assert decode(pack(value, Encoding.MSGPACK), Encoding.MSGPACK) == frame


@pytest.mark.parametrize("cls", OUTBOUND_CLASSES, ids=tag_of)
@given(data=st.data())
def test_outbound_frame_reads_the_same_to_msgpack_and_json_clients(
    cls: type[Frame], data: st.DataObject
) -> None:
    frame = data.draw(structs_of(cls))

    as_msgpack = msgpack.unpackb(encode(frame, Encoding.MSGPACK))
    as_json = json.loads(encode(frame, Encoding.JSON))

    assert as_msgpack == as_json
    assert as_json == as_wire_dict(frame)


@pytest.mark.parametrize("cls", OUTBOUND_CLASSES, ids=tag_of)
@given(data=st.data())
def test_outbound_frame_round_trips_through_decode_outbound(
    cls: type[Frame], data: st.DataObject
) -> None:
    frame = data.draw(structs_of(cls))

    for encoding in Encoding:
        assert decode_outbound(encode(frame, encoding), encoding) == frame
        # As a server outside this codebase would write it.
        assert decode_outbound(pack(as_wire_dict(frame), encoding), encoding) == frame
    assert decode_outbound(encode(frame, Encoding.JSON).decode(), Encoding.JSON) == frame


@pytest.mark.parametrize("cls", OUTBOUND_CLASSES, ids=tag_of)
@given(data=st.data())
def test_no_server_frame_decodes_as_a_client_frame(cls: type[Frame], data: st.DataObject) -> None:
    # Four types share a name with a client frame (typing, read, delivered, patient_history):
    # their fields still tell them apart.
    frame = data.draw(structs_of(cls))

    for encoding in Encoding:
        assert decode_error(encode(frame, encoding), encoding).ref is None


@pytest.mark.parametrize("cls", INBOUND_CLASSES, ids=tag_of)
@given(data=st.data())
def test_no_client_frame_decodes_as_a_server_frame(cls: type[Frame], data: st.DataObject) -> None:
    frame = data.draw(structs_of(cls))

    for encoding in Encoding:
        with pytest.raises(ProtocolError) as caught:
            decode_outbound(encode(frame, encoding), encoding)
        assert caught.value.code is ErrorCode.BAD_FRAME


@given(st.integers())
def test_json_hello_carries_protocol_integers_of_any_size(protocol: int) -> None:
    frame = Hello(token="t", protocol=protocol)

    assert decode(msgspec.json.encode(frame), Encoding.JSON) == frame


# The wire format spelled out


def test_outbound_frames_spell_out_defaults_nested_values_and_error_codes_as_strings() -> None:
    error = Error(code=ErrorCode.AUTH_FAILED, message="no")
    welcome = Welcome(
        protocol=1,
        role="patient",
        user_id="p1",
        name="",
        expires_at=10,
        departments=[DepartmentInfo(id="general", name="General medicine", routing="pull")],
        emergency=EmergencyNotice(number="120", text="Not for emergencies: call 120."),
        ref="h1",
    )
    staff = Welcome(
        protocol=1, role="doctor", user_id="d1", name="Dr One", expires_at=10, departments=[]
    )

    assert json.loads(encode(error, Encoding.JSON)) == {
        "type": "error",
        "code": "auth_failed",
        "message": "no",
        "ref": None,
    }
    assert msgpack.unpackb(encode(welcome, Encoding.MSGPACK)) == {
        "type": "welcome",
        "protocol": 1,
        "role": "patient",
        "user_id": "p1",
        "name": "",
        "expires_at": 10,
        "departments": [{"id": "general", "name": "General medicine", "routing": "pull"}],
        "emergency": {"number": "120", "text": "Not for emergencies: call 120."},
        "ref": "h1",
    }
    assert json.loads(encode(staff, Encoding.JSON))["emergency"] is None
    assert msgpack.unpackb(encode(Pong(), Encoding.MSGPACK)) == {"type": "pong", "ref": None}


def test_a_list_of_nested_values_is_a_list_of_maps_without_type() -> None:
    entry = MessageEntry(
        seq=4, sender="d1", role="doctor", kind="text", text="Hello", client_msg_id="m4", ts=99
    )
    frame = Messages(consultation="c1", epoch="e1", last_seq=4, entries=[entry], ref="f1")

    assert json.loads(encode(frame, Encoding.JSON)) == {
        "type": "messages",
        "consultation": "c1",
        "epoch": "e1",
        "last_seq": 4,
        "entries": [
            {
                "seq": 4,
                "sender": "d1",
                "role": "doctor",
                "kind": "text",
                "text": "Hello",
                "client_msg_id": "m4",
                "ts": 99,
            }
        ],
        "ref": "f1",
    }


def test_json_encoding_is_utf8_text() -> None:
    data = encode(Error(code=ErrorCode.BAD_FRAME, message="été ✓ 胸痛"), Encoding.JSON)

    assert json.loads(data.decode("utf-8"))["message"] == "été ✓ 胸痛"


@pytest.mark.parametrize("type_name", INBOUND_TYPES)
@pytest.mark.parametrize("encoding", list(Encoding))
def test_minimal_frame_of_each_type_decodes_to_its_type_and_id(
    type_name: str, encoding: Encoding
) -> None:
    frame = decode(pack(MINIMAL_INBOUND[type_name], encoding), encoding)

    assert tag_of(type(frame)) == type_name
    assert frame.id == "f1"


@pytest.mark.parametrize("encoding", list(Encoding))
def test_minimal_frames_take_their_defaults(encoding: Encoding) -> None:
    def read(value: dict[str, Any]) -> Inbound:
        return decode(pack(value, encoding), encoding)

    assert read({"type": "ping"}) == Ping(id=None)
    assert read({"type": "hello", "token": "t"}) == Hello(
        token="t", protocol=PROTOCOL_VERSION, lang="", id=None
    )
    assert read(minimal("fetch", id=...)) == Fetch(
        consultation="c1", after_seq=0, epoch=None, limit=100, id=None
    )
    assert read(minimal("list_audit")) == ListAudit(limit=100, before=None, id="f1")
    assert read(minimal("end")) == End(consultation="c1", summary="", id="f1")
    joined = read(minimal("join"))
    assert isinstance(joined, Join)
    assert joined.intake == IntakeForm(symptoms="a dry cough for a week", age_band="", duration="")


@pytest.mark.parametrize("encoding", list(Encoding))
def test_delivered_reads_as_a_mark_from_clients_and_a_receipt_from_the_server(
    encoding: Encoding,
) -> None:
    sent = {"type": "delivered", "consultation": "c1", "seq": 7}
    assert decode(pack(sent, encoding), encoding) == MarkDelivered(consultation="c1", seq=7)
    receipt = {"type": "delivered", "consultation": "c1", "role": "patient", "seq": 7}
    assert decode_outbound(pack(receipt, encoding), encoding) == DeliveryReceipt(
        consultation="c1", role="patient", seq=7
    )
    assert decode_error(pack(receipt, encoding), encoding).code is ErrorCode.BAD_FRAME


def test_a_consultation_view_without_delivery_marks_reads_as_none_delivered() -> None:
    view = {
        "id": "c1",
        "department": "general",
        "state": "active",
        "patient": "p1",
        "doctor": "d1",
        "doctor_name": "Dr D1",
        "urgency": "routine",
        "red_flags": [],
        "intake": None,
        "started_ms": 1,
        "ended_ms": None,
        "outcome": None,
        "summary": "",
        "epoch": "1",
        "last_seq": 3,
        "read": {"doctor": 2},
    }
    decoded = msgspec.json.decode(json.dumps(view), type=ConsultationView)
    assert (decoded.read, decoded.delivered) == ({"doctor": 2}, {})
    written = json.loads(msgspec.json.encode(decoded))
    assert written == {**view, "delivered": {}}


def test_subprotocols_offer_json_first_then_msgpack() -> None:
    assert SUBPROTOCOLS == ("chatsvc.json", "chatsvc.msgpack")
    assert [Encoding(name) for name in SUBPROTOCOLS] == [Encoding.JSON, Encoding.MSGPACK]
