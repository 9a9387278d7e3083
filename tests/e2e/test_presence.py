"""Presence over real sockets: the other side is told when someone's last connection goes and
comes back; past the grace a doctor's patients are requeued and a patient's consultation ends;
a tab closing on one gateway does not make a user connected on another one absent."""

from __future__ import annotations

import asyncio

import pytest

from chatsvc.client import ChatClient, ChatError
from chatsvc.config import Config, LimitsConfig, TriageConfig
from chatsvc.protocol import frames as f
from tests.e2e.conftest import ROOMY_LIMITS, Desk, DeskFactory

QUICK = Config(limits=ROOMY_LIMITS, triage=TriageConfig(presence_ttl_s=1, patient_grace_s=1))


async def consultation(
    desk: Desk, doctor: ChatClient | None = None
) -> tuple[str, ChatClient, ChatClient]:
    doctor = doctor or await desk.doctor("d1")
    patient = await desk.patient("p1")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    return case.id, patient, doctor


async def test_a_doctor_who_drops_is_reconnecting_then_the_patient_is_requeued(
    make_desk: DeskFactory,
) -> None:
    desk = await make_desk(QUICK)
    cid, patient, doctor = await consultation(desk)
    doctor.auto_resume = False
    await doctor.close()
    told = await patient.next(f.PeerPresence)
    assert (told.consultation, told.role, told.status) == (cid, "doctor", "reconnecting")
    queued = await patient.next(f.Queued, timeout=15)
    assert queued.department == "general" and queued.position == 1


async def test_a_doctor_back_in_time_keeps_the_consultation(make_desk: DeskFactory) -> None:
    desk = await make_desk(Config(limits=ROOMY_LIMITS, triage=TriageConfig(presence_ttl_s=30)))
    cid, patient, doctor = await consultation(desk)
    doctor.auto_resume = False
    await doctor.close()
    assert (await patient.next(f.PeerPresence)).status == "reconnecting"
    await doctor.reconnect()
    assert (await patient.next(f.PeerPresence)).status == "back"
    await doctor.send(cid, "sorry, my connection dropped")
    assert (await patient.wait_for_messages(cid, 1)).messages[1].text.startswith("sorry")


async def test_a_doctor_with_a_tab_on_another_gateway_is_not_gone_when_one_closes(
    make_desk: DeskFactory,
) -> None:
    east, west = await make_desk(QUICK), await make_desk(QUICK)
    tab = await west.doctor("d1", available=False)
    cid, patient, doctor = await consultation(east)
    await doctor.close()
    await tab.send(cid, "still here")  # a frame round trip after the close was counted
    thread = await patient.wait_for_messages(cid, 1)
    assert thread.messages[1].text == "still here"
    assert not [frame for frame in patient.inbox if isinstance(frame, f.PeerPresence)]


async def test_a_patient_who_drops_past_the_grace_leaves_the_consultation(
    make_desk: DeskFactory,
) -> None:
    desk = await make_desk(QUICK)
    cid, patient, doctor = await consultation(desk)
    patient.auto_resume = False
    await patient.close()
    told = await doctor.next(f.PeerPresence)
    assert (told.role, told.status) == ("patient", "reconnecting")
    ended = await doctor.next(f.Ended, timeout=15)
    assert (ended.consultation, ended.outcome) == (cid, "patient_left")
    status = await doctor.set_status("available")
    assert status.active == 0  # the slot is free again


async def test_a_users_connections_are_limited_with_close_4010(make_desk: DeskFactory) -> None:
    config = Config(
        limits=LimitsConfig(max_connections_per_user=2, frames_per_second=1000, frame_burst=1000)
    )
    desk = await make_desk(config)
    await desk.patient("p1")
    await desk.patient("p1")
    with pytest.raises(ChatError) as refused:
        await desk.patient("p1")
    assert refused.value.code == "too_many_connections"
    with pytest.raises(ConnectionError):
        await desk.clients[-1].next(f.Pong)  # returns once the socket is closed
    assert desk.clients[-1].close_code == 4010


async def test_tabs_opened_at_once_past_the_limit_are_refused_all_but_the_limit(
    make_desk: DeskFactory,
) -> None:
    config = Config(
        limits=LimitsConfig(max_connections_per_user=2, frames_per_second=1000, frame_burst=1000)
    )
    desk = await make_desk(config)
    tabs = await asyncio.gather(*(desk.patient("p1") for _ in range(6)), return_exceptions=True)
    refused = [tab for tab in tabs if isinstance(tab, ChatError)]
    assert len(refused) == 4 and {error.code for error in refused} == {"too_many_connections"}
    assert sum(isinstance(tab, ChatClient) for tab in tabs) == 2
