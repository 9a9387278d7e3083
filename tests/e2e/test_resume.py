"""Resume: a client that reconnects says where it stands and gets everything after it, then
live messages, with no gap and no duplicate, even while messages keep coming; a position that
cannot be served gets an explicit reset; lost notifications are caught up."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from chatsvc.client import ChatClient
from chatsvc.gateway.keys import REDIS_LINK
from chatsvc.protocol import frames as f
from tests.e2e.conftest import Desk, DeskFactory
from triage import keys
from triage.transcripts import transcript_keys


async def consultation(desk: Desk) -> tuple[str, ChatClient, ChatClient]:
    patient = await desk.patient("p1")
    doctor = await desk.doctor("d1")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    return case.id, patient, doctor


async def drop(client: ChatClient) -> None:
    """Cut the client's socket without a close handshake, as a network failure would."""
    assert client._ws is not None  # noqa: SLF001
    client._ws.transport.abort()  # noqa: SLF001


async def test_a_dropped_client_resumes_by_itself_while_messages_keep_coming(desk: Desk) -> None:
    cid, patient, doctor = await consultation(desk)
    for n in range(10):
        await doctor.send(cid, f"before {n}")
    await patient.wait_for_messages(cid, 10)

    sending = asyncio.gather(*(doctor.send(cid, f"during {n}") for n in range(100)))
    await drop(patient)
    await sending
    thread = await patient.wait_for_messages(cid, 110)
    sent = await doctor.wait_for_messages(cid, 110)
    assert [m.text for m in thread.in_order()] == [m.text for m in sent.in_order()]
    assert sorted(thread.messages) == list(range(1, 111))
    assert patient.duplicates == 0 and patient.resumes == 1


async def test_a_resume_from_an_old_position_gets_exactly_what_follows(desk: Desk) -> None:
    cid, patient, doctor = await consultation(desk)
    for n in range(30):
        await doctor.send(cid, f"m{n}")
    await patient.wait_for_messages(cid, 30)
    for seq in range(11, 31):  # forget the last twenty, as a client restored from disk might
        del patient.threads[cid].messages[seq]
    await patient.reconnect()
    thread = await patient.wait_for_messages(cid, 30)
    assert [m.text for m in thread.in_order()] == [f"m{n}" for n in range(30)]
    assert patient.duplicates == 0


async def test_a_consultation_that_ended_while_away_is_finished_on_resume(desk: Desk) -> None:
    cid, patient, doctor = await consultation(desk)
    await doctor.send(cid, "first")
    await patient.wait_for_messages(cid, 1)
    await patient.close()
    await doctor.send(cid, "your results are normal")
    await doctor.end(cid, "normal results")

    await patient.reconnect()
    ended = await patient.next(f.Ended)
    assert ended.summary == "normal results"
    assert [m.text for m in patient.threads[cid].in_order()] == ["first", "your results are normal"]


async def test_a_position_in_a_lost_epoch_gets_a_reset_and_everything_again(
    desk: Desk, redis: Redis
) -> None:
    cid, patient, doctor = await consultation(desk)
    await doctor.send(cid, "one")
    await patient.wait_for_messages(cid, 1)
    await patient.close()
    await redis.delete(keys.transcript_meta(cid))  # the meta is lost: a new epoch starts
    await doctor.send(cid, "two")

    await patient.reconnect()
    reset = await patient.next(f.Reset)
    assert reset.reason == "epoch_changed" and reset.last_seq == 2
    thread = await patient.wait_for_messages(cid, 2)
    assert [m.text for m in thread.in_order()] == ["one", "two"]
    assert thread.epoch == reset.epoch


async def test_a_lost_last_notification_is_caught_up_by_the_position_check(
    desk: Desk, redis: Redis
) -> None:
    cid, patient, doctor = await consultation(desk)
    await doctor.send(cid, "heard")
    await patient.wait_for_messages(cid, 1)
    link = desk.gateway.app[REDIS_LINK]
    # The message is stored but its notification goes to a channel nobody listens to.
    await link.scripts["transcript_append"](
        keys=transcript_keys(cid),
        args=["", "nowhere", "d1", "silent-1", "text", "unheard"],
        client=redis,
    )
    thread = await patient.wait_for_messages(cid, 2)
    assert thread.messages[2].text == "unheard"
    assert (await doctor.wait_for_messages(cid, 2)).messages[2].text == "unheard"


async def test_a_killed_subscriber_connection_loses_nothing(desk: Desk, redis: Redis) -> None:
    cid, patient, doctor = await consultation(desk)
    sending = asyncio.gather(*(doctor.send(cid, f"burst {n}") for n in range(50)))
    await redis.client_kill_filter(_type="pubsub")
    await sending
    thread = await patient.wait_for_messages(cid, 50)
    assert sorted(thread.messages) == list(range(1, 51))
    assert patient.duplicates == 0


async def test_two_devices_of_one_patient_on_two_gateways_receive_everything_in_order(
    make_desk: DeskFactory,
) -> None:
    east, west = await make_desk(), await make_desk()
    phone = await east.patient("p1")
    laptop = await west.patient("p1")
    doctor = await east.doctor("d1")
    await phone.join("general", "a question from my phone")
    case = await doctor.take_next()
    await phone.next(f.Assigned)
    await laptop.next(f.Assigned)
    for n in range(25):
        await (phone if n % 2 else laptop).send(case.id, f"p{n}")
        await doctor.send(case.id, f"d{n}")
    expected = [m.text for m in (await doctor.wait_for_messages(case.id, 50)).in_order()]
    for device in (phone, laptop):
        assert [m.text for m in (await device.wait_for_messages(case.id, 50)).in_order()] == (
            expected
        )
        assert device.duplicates == 0
