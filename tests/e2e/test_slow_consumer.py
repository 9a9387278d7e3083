"""A client that stops reading is closed with 4009 once its bounded outbox fills; everyone
else keeps receiving; its resume gets everything."""

from __future__ import annotations

import asyncio
import secrets
import socket

from chatsvc.client import ChatClient
from chatsvc.gateway.hub import OUTBOX_FRAMES, SEND_TIMEOUT_S
from chatsvc.gateway.keys import CONTEXT
from chatsvc.protocol import frames as f
from tests.e2e.conftest import Desk

# Near the longest message, and random: WebSocket compression would shrink a repeated letter
# to nothing and the buffers would never fill.
BIG_BYTES = 2900  # → about 3,900 characters of URL-safe base64
# Kernel buffers hold what the outbox does not; without a small receive buffer, loopback TCP
# autotuning would absorb tens of megabytes before the gateway felt anything.
SMALL_RCVBUF = 64 * 1024


def hang(client: ChatClient) -> asyncio.Event:
    """The client's app hangs: it stops taking frames, so its socket stops being read."""
    unstuck = asyncio.Event()
    receive = client._receive  # noqa: SLF001

    async def hung(frame: f.Outbound) -> None:
        await unstuck.wait()
        await receive(frame)

    client._receive = hung  # type: ignore[method-assign]  # noqa: SLF001
    assert client._ws is not None  # noqa: SLF001
    sock = client._ws.transport.get_extra_info("socket")  # noqa: SLF001
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    return unstuck


async def test_a_stalled_reader_is_closed_and_resumes_while_others_keep_up(desk: Desk) -> None:
    patient = await desk.patient("p1")
    laptop = await desk.patient("p1")  # a second device of the patient, reading normally
    doctor = await desk.doctor("d1")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    await laptop.next(f.Assigned)
    hub = desk.gateway.app[CONTEXT].hub
    unstuck = hang(patient)
    try:
        sent = largest = 0
        while not any(c.closing for c in hub.conns_of("p1")) and sent < 10 * OUTBOX_FRAMES:
            await doctor.send(case.id, f"{sent} {secrets.token_urlsafe(BIG_BYTES)}")
            sent += 1
            largest = max(largest, *(c.outbox.qsize() for c in hub.conns_of("p1")))
            if sent % 100 == 0:  # the other device keeps up: its progress, not a time
                await laptop.wait_for_messages(case.id, sent)
        assert any(c.closing for c in hub.conns_of("p1")), f"not closed after {sent}"
        assert largest <= OUTBOX_FRAMES
        for n in range(5):
            await doctor.send(case.id, f"after {n}")
        total = sent + 5
        assert len((await laptop.wait_for_messages(case.id, total, timeout=60)).messages) == total
    finally:
        unstuck.set()
    thread = await patient.wait_for_messages(case.id, total, timeout=60)
    assert patient.close_codes == [4009]  # closed for being slow, then resumed
    assert sorted(thread.messages) == list(range(1, total + 1))
    assert patient.duplicates == 0 and patient.resumes == 1
    assert laptop.duplicates == 0


async def test_a_reader_stuck_in_the_middle_of_a_send_is_closed_and_resumes(desk: Desk) -> None:
    patient = await desk.patient("p1")
    doctor = await desk.doctor("d1")
    await patient.join("general", "a question")
    case = await doctor.take_next()
    await patient.next(f.Assigned)
    hub = desk.gateway.app[CONTEXT].hub
    unstuck = hang(patient)
    try:
        sent = 0
        # Until the writer waits inside a send: the peer's TCP window is full.
        while not any(c.sending_since is not None for c in hub.conns_of("p1")):
            assert sent < 10 * OUTBOX_FRAMES, "the writer never had to wait"
            await doctor.send(case.id, f"{sent} {secrets.token_urlsafe(BIG_BYTES)}")
            sent += 1
        now = asyncio.get_running_loop().time()
        assert hub.close_stuck(now) == 0  # waiting, but not for long yet
        # The watchdog's view SEND_TIMEOUT_S later (a clock moved, not a sleep).
        assert hub.close_stuck(now + SEND_TIMEOUT_S) == 1
        assert all(c.closing for c in hub.conns_of("p1"))
    finally:
        unstuck.set()
    await doctor.send(case.id, "after the close")
    total = sent + 1
    thread = await patient.wait_for_messages(case.id, total, timeout=60)
    assert sorted(thread.messages) == list(range(1, total + 1))
    assert patient.duplicates == 0 and patient.resumes == 1
    # The close frame, or (a peer that took nothing for STUCK_CLOSE_WAIT_S) a dropped socket.
    assert patient.close_codes in ([4009], [1006])
