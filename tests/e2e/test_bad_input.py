"""Bad input over a real socket: each bad frame gets the right error, referring to the frame
when it can be read, and the connection keeps serving; only repeated abuse closes it."""

from __future__ import annotations

import json

import msgpack
import pytest
import websockets

from chatsvc.config import Config, LimitsConfig
from chatsvc.protocol import frames as f
from chatsvc.protocol.codec import Encoding
from tests.e2e.conftest import Desk, DeskFactory

JSON_CASES = [
    ("{not json", "bad_frame", None),
    ('{"type": "teleport", "id": "x1"}', "bad_frame", "x1"),
    ('{"type": "send", "id": "x2", "consultation": "c1", "text": "hi"}', "bad_frame", "x2"),
    ('{"type": "read", "id": "x3", "consultation": "c1", "seq": "three"}', "bad_frame", "x3"),
    ('{"type": "join", "id": "x4", "department": "general"}', "bad_frame", "x4"),
    ('{"type": "ping", "id": "x5", "extra": 1}', "bad_frame", "x5"),
    ('["ping"]', "bad_frame", None),
    ('{"type": "take_next", "id": "x6"}', "wrong_role", "x6"),
    ('{"type": "fetch", "id": "x7", "consultation": "c1", "limit": 100000}', "bad_frame", "x7"),
]


@pytest.mark.parametrize(("raw", "code", "ref"), JSON_CASES)
async def test_a_bad_json_frame_gets_its_error_and_the_socket_keeps_serving(
    desk: Desk, raw: str, code: str, ref: str | None
) -> None:
    patient = await desk.patient("p1")
    await patient.send_raw(raw)
    error = await patient.next(f.Error)
    assert (error.code, error.ref) == (code, ref)
    assert isinstance(await patient.ping(), f.Pong)


async def test_bad_msgpack_and_wrong_frame_kinds_get_errors_on_a_msgpack_socket(
    desk: Desk,
) -> None:
    doctor = await desk.doctor("d1", encoding=Encoding.MSGPACK, available=False)
    await doctor.send_raw(b"\xc1\xff\x00")
    assert (await doctor.next(f.Error)).code == "bad_frame"
    await doctor.send_raw(msgpack.packb({"type": "accept", "id": "m1", "consultation": 7}))
    error = await doctor.next(f.Error)
    assert (error.code, error.ref) == ("bad_frame", "m1")
    await doctor.send_raw('{"type": "ping"}')  # text on a binary connection
    assert (await doctor.next(f.Error)).code == "bad_frame"
    assert isinstance(await doctor.ping(), f.Pong)


async def test_an_oversize_frame_and_an_oversize_message_get_errors(desk: Desk) -> None:
    patient = await desk.patient("p1")
    await patient.send_raw(json.dumps({"type": "ping", "id": "big", "pad": "x" * 70000}))
    assert (await patient.next(f.Error)).code == "frame_too_large"
    doctor = await desk.doctor("d1")
    await patient.join("general", "headache")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    raw = {"type": "send", "id": "long", "consultation": case.id, "client_msg_id": "m"}
    await patient.send_raw(json.dumps({**raw, "text": "y" * 4001}))
    error = await patient.next(f.Error)
    assert (error.code, error.ref) == ("message_too_long", "long")
    assert isinstance(await patient.ping(), f.Pong)


async def test_a_frame_before_hello_is_refused_and_closes_with_4001(desk: Desk) -> None:
    async with websockets.connect(desk.ws_url, subprotocols=["chatsvc.json"]) as ws:
        await ws.send(json.dumps({"type": "ping", "id": "early"}))
        error = json.loads(await ws.recv())
        assert (error["code"], error["ref"]) == ("not_authenticated", "early")
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001


async def test_frames_over_the_rate_get_errors_and_repeated_abuse_closes_4008(
    make_desk: DeskFactory,
) -> None:
    limits = LimitsConfig(frames_per_second=1, frame_burst=3, max_violations_per_minute=5)
    desk = await make_desk(Config(limits=limits))
    patient = await desk.patient("p1")
    for n in range(3):
        await patient.send_frame(f.Ping(id=f"ok{n}"))
    await patient.send_frame(f.Ping(id="over"))
    limited = await patient.next(f.Error)
    assert (limited.code, limited.ref) == ("rate_limited", "over")
    for n in range(10):
        try:
            await patient.send_frame(f.Ping(id=f"flood{n}"))
        except ConnectionError:
            break
    with pytest.raises(ConnectionError):
        await patient.next(f.Pong, lambda p: p.ref == "never")
    assert patient.close_code == 4008
