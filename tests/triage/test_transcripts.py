"""Transcripts on real Redis: gapless seq, idempotent sends, epochs, trimming, exports."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.cluster import key_slot

from triage import keys
from triage.scripts import Scripts, script_names
from triage.transcripts import (
    DeliveredMark,
    EpochChanged,
    InvalidMessage,
    MessageTooLong,
    NotParticipant,
    PositionAhead,
    PositionExpired,
    ReadMark,
    ResetRequired,
    RoleConflict,
    TranscriptClosed,
    TranscriptError,
    TranscriptNotFound,
    TranscriptNotOpen,
    Transcripts,
    parse_notice,
    transcript_keys,
)

CID = "c-1"
PATIENT = "patient-1"
DOCTOR = "doctor-1"
PARTICIPANTS = {PATIENT: "patient", DOCTOR: "doctor"}
START_MS = 1_700_000_000_000
MAX_BODY = 200
RETENTION_S = 7 * 86400


class StepClock:
    """A test clock in milliseconds that moves only when told."""

    def __init__(self, ms: int = START_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def transcripts(redis: Redis, clock: StepClock) -> Transcripts:
    return Transcripts(redis, Scripts(redis), max_body_chars=MAX_BODY, now=clock)


async def send(transcripts: Transcripts, n: int, cid: str = CID, sender: str = PATIENT) -> None:
    for i in range(1, n + 1):
        await transcripts.append(cid, sender, f"m{i}", "text", f"message {i}")


async def test_seq_counts_from_one_without_gaps(transcripts: Transcripts, redis: Redis) -> None:
    opened = await transcripts.open(CID, PARTICIPANTS)
    assert opened.seq == 0
    results = [
        await transcripts.append(CID, PATIENT if i % 2 else DOCTOR, f"m{i}", "text", f"hi {i}")
        for i in range(1, 11)
    ]
    assert [r.seq for r in results] == list(range(1, 11))
    assert [r.entry_id for r in results] == [f"{i}-0" for i in range(1, 11)]
    assert {r.epoch for r in results} == {opened.epoch}
    assert not any(r.duplicate for r in results)
    assert await redis.xlen(keys.transcript_stream(CID)) == 10
    fields = (await redis.xrange(keys.transcript_stream(CID), "2-0", "2-0"))[0][1]
    assert fields == {
        "sender": DOCTOR,
        "role": "doctor",
        "kind": "text",
        "body": "hi 2",
        "cmid": "m2",
        "ts": str(START_MS),
    }


async def test_open_is_idempotent_and_adds_new_participants(transcripts: Transcripts) -> None:
    first = await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 2)
    again = await transcripts.open(CID, PARTICIPANTS)
    assert again == (first.epoch, 2)
    with pytest.raises(NotParticipant):
        await transcripts.append(CID, "doctor-2", "x1", "text", "hello")
    await transcripts.open(CID, {"doctor-2": "doctor"})  # after a transfer
    result = await transcripts.append(CID, "doctor-2", "x1", "text", "hello")
    assert (result.epoch, result.seq) == (first.epoch, 3)
    assert (await transcripts.read(CID)).entries[-1].role == "doctor"


async def test_open_refuses_another_role_and_changes_nothing(
    transcripts: Transcripts, redis: Redis
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    with pytest.raises(RoleConflict) as caught:
        await transcripts.open(CID, {"newcomer": "doctor", PATIENT: "doctor"})
    assert caught.value.user_id == PATIENT
    assert caught.value.code == "role_conflict"
    meta = await redis.hgetall(keys.transcript_meta(CID))
    assert meta["p:" + PATIENT] == "patient"
    assert "p:newcomer" not in meta


async def test_epochs_are_digits_and_differ_per_creation(transcripts: Transcripts) -> None:
    one = await transcripts.open("c-a", PARTICIPANTS)
    two = await transcripts.open("c-b", PARTICIPANTS)
    assert one.epoch.isdigit() and two.epoch.isdigit()
    assert one.epoch != two.epoch


async def test_retry_with_same_client_msg_id_is_stored_once(
    transcripts: Transcripts, redis: Redis, clock: StepClock
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    first = await transcripts.append(CID, PATIENT, "same", "text", "first")
    await send(transcripts, 2, sender=DOCTOR)
    clock.ms += 5000
    retry = await transcripts.append(CID, PATIENT, "same", "text", "first, resent")
    assert retry.duplicate
    assert (retry.entry_id, retry.epoch, retry.seq, retry.ts_ms) == (
        first.entry_id,
        first.epoch,
        first.seq,
        first.ts_ms,
    )
    assert await redis.xlen(keys.transcript_stream(CID)) == 3
    assert (await transcripts.read(CID)).last_seq == 3


async def test_same_client_msg_id_from_two_senders_is_two_messages(
    transcripts: Transcripts,
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    mine = await transcripts.append(CID, PATIENT, "1", "text", "from the patient")
    theirs = await transcripts.append(CID, DOCTOR, "1", "text", "from the doctor")
    assert (mine.seq, theirs.seq) == (1, 2)
    assert not theirs.duplicate


async def test_non_participant_is_refused_and_nothing_is_stored(
    transcripts: Transcripts, redis: Redis
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    with pytest.raises(NotParticipant) as caught:
        await transcripts.append(CID, "intruder", "m1", "text", "let me in")
    assert caught.value.user_id == "intruder"
    assert caught.value.code == "not_participant"
    assert await redis.exists(keys.transcript_stream(CID), keys.transcript_dedup(CID)) == 0
    assert (await transcripts.read(CID)).last_seq == 0


async def test_append_before_open_is_refused(transcripts: Transcripts, redis: Redis) -> None:
    with pytest.raises(TranscriptNotOpen):
        await transcripts.append(CID, PATIENT, "m1", "text", "anyone?")
    assert await redis.exists(*transcript_keys(CID)) == 0


async def test_append_after_close_is_refused_but_a_retry_learns_its_position(
    transcripts: Transcripts, redis: Redis
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    stored = await transcripts.append(CID, PATIENT, "m1", "text", "bye")
    await transcripts.close(CID, RETENTION_S)
    with pytest.raises(TranscriptClosed) as caught:
        await transcripts.append(CID, DOCTOR, "d1", "text", "wait")
    assert caught.value.code == "closed"
    retry = await transcripts.append(CID, PATIENT, "m1", "text", "bye")
    assert retry.duplicate and retry.seq == stored.seq
    assert await redis.xlen(keys.transcript_stream(CID)) == 1


async def test_close_sets_ttls_once_and_is_idempotent(
    transcripts: Transcripts, redis: Redis, clock: StepClock
) -> None:
    opened = await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 3)
    closed = await transcripts.close(CID, RETENTION_S)
    assert closed == (opened.epoch, 3)
    for key in transcript_keys(CID):
        assert 0 < await redis.ttl(key) <= RETENTION_S, key
    meta = await redis.hgetall(keys.transcript_meta(CID))
    assert (meta["closed"], meta["closed_ms"]) == ("1", str(START_MS))
    await redis.expire(keys.transcript_meta(CID), 100)
    clock.ms += 60_000
    assert await transcripts.close(CID, RETENTION_S) == closed
    assert await redis.hget(keys.transcript_meta(CID), "closed_ms") == str(START_MS)
    assert await redis.ttl(keys.transcript_meta(CID)) <= 100  # a retry keeps the expiry
    assert await transcripts.open(CID, {"late": "doctor"}) == closed  # closed stays closed
    assert await redis.hget(keys.transcript_meta(CID), "p:late") is None


async def test_close_before_open_is_refused(transcripts: Transcripts) -> None:
    with pytest.raises(TranscriptNotOpen):
        await transcripts.close(CID, RETENTION_S)


async def test_read_after_a_seq_returns_only_later_entries_and_honours_limit(
    transcripts: Transcripts,
) -> None:
    opened = await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 10)
    page = await transcripts.read(CID, after_seq=4, limit=3, epoch=opened.epoch)
    assert page.epoch == opened.epoch
    assert page.last_seq == 10
    assert [e.seq for e in page.entries] == [5, 6, 7]
    assert [e.client_msg_id for e in page.entries] == ["m5", "m6", "m7"]
    assert page.entries[0].body == "message 5"
    assert page.entries[0].ts_ms == START_MS
    assert (await transcripts.read(CID, after_seq=10)).entries == ()
    assert len((await transcripts.read(CID)).entries) == 10


async def test_read_with_a_stale_epoch_raises_epoch_changed(transcripts: Transcripts) -> None:
    opened = await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 2)
    with pytest.raises(EpochChanged) as caught:
        await transcripts.read(CID, after_seq=1, epoch="12345")
    assert (caught.value.held, caught.value.current) == ("12345", opened.epoch)
    assert isinstance(caught.value, ResetRequired)


async def test_trimmed_position_raises_position_expired(
    transcripts: Transcripts, redis: Redis
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 6)
    await redis.xtrim(keys.transcript_stream(CID), minid="4-0", approximate=False)
    with pytest.raises(PositionExpired) as caught:
        await transcripts.read(CID, after_seq=2)
    assert caught.value.first_seq == 4
    assert [e.seq for e in (await transcripts.read(CID, after_seq=3)).entries] == [4, 5, 6]
    await redis.xtrim(
        keys.transcript_stream(CID), minid="7-0", approximate=False
    )  # everything gone
    with pytest.raises(PositionExpired):
        await transcripts.read(CID, after_seq=5)
    assert (await transcripts.read(CID, after_seq=6)).entries == ()


async def test_a_position_past_the_last_message_is_refused(transcripts: Transcripts) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 2)
    with pytest.raises(PositionAhead) as caught:
        await transcripts.read(CID, after_seq=3)
    assert caught.value.last_seq == 2


async def test_read_of_an_unknown_consultation_raises_not_found(
    transcripts: Transcripts,
) -> None:
    with pytest.raises(TranscriptNotFound):
        await transcripts.read("nobody")
    with pytest.raises(TranscriptNotFound):
        await transcripts.export_json("nobody")


async def test_lost_meta_gives_a_new_epoch_and_seq_keeps_increasing(
    transcripts: Transcripts, redis: Redis
) -> None:
    old = await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 3)
    await redis.delete(keys.transcript_meta(CID))
    with pytest.raises(TranscriptNotOpen):
        await transcripts.append(CID, PATIENT, "m4", "text", "hello?")
    with pytest.raises(TranscriptNotFound):
        await transcripts.read(CID)
    new = await transcripts.open(CID, PARTICIPANTS)
    assert new.epoch != old.epoch
    assert new.seq == 3
    result = await transcripts.append(CID, PATIENT, "m4", "text", "hello again")
    assert (result.epoch, result.seq, result.entry_id) == (new.epoch, 4, "4-0")
    with pytest.raises(EpochChanged):
        await transcripts.read(CID, after_seq=3, epoch=old.epoch)
    assert [e.seq for e in (await transcripts.read(CID, epoch=new.epoch)).entries] == [1, 2, 3, 4]


async def test_lost_meta_after_a_trim_continues_from_the_last_generated_id(
    transcripts: Transcripts, redis: Redis
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 5)
    await redis.xtrim(keys.transcript_stream(CID), minid="6-0", approximate=False)
    await redis.delete(keys.transcript_meta(CID))
    assert (await transcripts.open(CID, PARTICIPANTS)).seq == 5
    assert (await transcripts.append(CID, DOCTOR, "d1", "text", "after")).seq == 6


async def test_lost_stream_gives_a_new_epoch_and_stores_a_retry_again(
    transcripts: Transcripts, redis: Redis
) -> None:
    old = await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 3)
    await redis.delete(keys.transcript_stream(CID))
    retry = await transcripts.append(CID, PATIENT, "m3", "text", "message 3")
    assert not retry.duplicate
    assert retry.epoch != old.epoch
    assert retry.seq == 4
    with pytest.raises(EpochChanged):
        await transcripts.read(CID, after_seq=2, epoch=old.epoch)
    assert [e.seq for e in (await transcripts.read(CID, after_seq=3)).entries] == [4]


async def test_each_append_publishes_its_position_and_entry(
    transcripts: Transcripts, redis: Redis
) -> None:
    opened = await transcripts.open(CID, PARTICIPANTS)
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.transcript_channel(CID))
    try:
        confirmation = await pubsub.get_message(timeout=5.0)
        assert confirmation is not None and confirmation["type"] == "subscribe"
        await send(transcripts, 2)
        await transcripts.append(CID, PATIENT, "m2", "text", "retry")  # duplicate: no notice
        await transcripts.append(CID, DOCTOR, "d1", "text", "third")
        received = [parse_notice(await _next_message(pubsub)) for _ in range(3)]
        assert [(n.epoch, n.seq) for n in received] == [(opened.epoch, s) for s in (1, 2, 3)]  # type: ignore[union-attr]
        stored = (await transcripts.read(CID)).entries
        assert [n.entry for n in received] == list(stored)  # type: ignore[union-attr]
    finally:
        await pubsub.aclose()


async def _next_message(pubsub: PubSub) -> str:
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
    assert message is not None, "no notification within 5 s"
    return str(message["data"])


async def test_unicode_bodies_round_trip(transcripts: Transcripts) -> None:
    await transcripts.open(CID, {"病人": "patient", DOCTOR: "doctor"})
    body = "我胸痛，呼吸困难 🫁 — café"
    await transcripts.append(CID, "病人", "u1", "text", body)
    entry = (await transcripts.read(CID)).entries[0]
    assert (entry.sender, entry.body) == ("病人", body)
    assert json.loads(await transcripts.export_json(CID))["entries"][0]["body"] == body
    assert body in await transcripts.export_text(CID)


async def test_exports_hold_every_message_in_order_across_pages(
    redis: Redis, clock: StepClock
) -> None:
    paged = Transcripts(
        redis, Scripts(redis), max_body_chars=MAX_BODY, now=clock, export_page_size=3
    )
    opened = await paged.open(CID, PARTICIPANTS)
    for i in range(1, 11):
        clock.ms = START_MS + i * 1000
        sender = PATIENT if i % 2 else DOCTOR
        await paged.append(CID, sender, f"m{i}", "text", f"line {i}\nsecond line")
    document = json.loads(await paged.export_json(CID))
    assert (document["consultation"], document["epoch"]) == (CID, opened.epoch)
    assert [e["seq"] for e in document["entries"]] == list(range(1, 11))
    assert document["entries"][0] == {
        "time": "2023-11-14T22:13:21.000Z",
        "seq": 1,
        "entry_id": "1-0",
        "sender": PATIENT,
        "role": "patient",
        "kind": "text",
        "body": "line 1\nsecond line",
        "client_msg_id": "m1",
        "ts_ms": START_MS + 1000,
    }
    lines = (await paged.export_text(CID)).splitlines()
    assert len(lines) == 10
    assert lines[0] == "2023-11-14T22:13:21.000Z patient patient-1: line 1\\nsecond line"
    assert lines[1] == "2023-11-14T22:13:22.000Z doctor doctor-1: line 2\\nsecond line"
    assert [line.split(": ", 1)[1].split("\\n")[0] for line in lines] == [
        f"line {i}" for i in range(1, 11)
    ]


async def test_exports_start_at_the_first_entry_still_held(
    transcripts: Transcripts, redis: Redis
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 5)
    await redis.xtrim(keys.transcript_stream(CID), minid="3-0", approximate=False)
    document = json.loads(await transcripts.export_json(CID))
    assert [e["seq"] for e in document["entries"]] == [3, 4, 5]
    assert await transcripts.export_text(CID) != ""


async def test_empty_transcript_exports_no_messages(transcripts: Transcripts) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    assert json.loads(await transcripts.export_json(CID))["entries"] == []
    assert await transcripts.export_text(CID) == ""


async def test_200_concurrent_appends_get_seq_1_to_200_once_each(
    transcripts: Transcripts, redis: Redis
) -> None:
    await transcripts.open(CID, PARTICIPANTS)

    async def writer(task: int) -> list[int]:
        sender = PATIENT if task % 2 else DOCTOR
        seqs = []
        for i in range(10):
            result = await transcripts.append(CID, sender, f"t{task}-{i}", "text", f"{task}/{i}")
            seqs.append(result.seq)
        return seqs

    per_task = await asyncio.gather(*(writer(task) for task in range(20)))
    assigned = [seq for seqs in per_task for seq in seqs]
    assert sorted(assigned) == list(range(1, 201))
    assert all(seqs == sorted(seqs) for seqs in per_task)  # each writer sees its order kept
    entries = []
    after = 0
    while page := (await transcripts.read(CID, after_seq=after, limit=64)).entries:
        entries.extend(page)
        after = page[-1].seq
    assert [e.seq for e in entries] == list(range(1, 201))
    assert len({e.client_msg_id for e in entries}) == 200
    assert await redis.hlen(keys.transcript_dedup(CID)) == 200


async def test_invalid_messages_are_refused_before_redis(transcripts: Transcripts) -> None:
    # The transcript was never opened: a check that reached Redis would say not_open instead.
    with pytest.raises(MessageTooLong) as caught:
        await transcripts.append(CID, PATIENT, "m1", "text", "x" * (MAX_BODY + 1))
    assert (caught.value.length, caught.value.limit) == (MAX_BODY + 1, MAX_BODY)
    assert caught.value.code == "message_too_long"
    bad = [
        ("", "text", "hi", "client_msg_id"),
        ("c" * 129, "text", "hi", "client_msg_id"),
        ("m1", "", "hi", "kind"),
        ("m1", "Text", "hi", "kind"),
        ("m1", "k" * 33, "hi", "kind"),
        ("m1", "text", "", "body"),
        ("m1", "text", "\ud800", "body"),
    ]
    for client_msg_id, kind, body, field in bad:
        with pytest.raises(InvalidMessage) as invalid:
            await transcripts.append(CID, PATIENT, client_msg_id, kind, body)
        assert invalid.value.field == field
        assert isinstance(invalid.value, TranscriptError)
    longest = "长" * MAX_BODY  # the limit counts characters, not bytes
    with pytest.raises(TranscriptNotOpen):
        await transcripts.append(CID, PATIENT, "m1", "system", longest)


async def test_timestamps_come_from_redis_time_without_a_test_clock(redis: Redis) -> None:
    production = Transcripts(redis, Scripts(redis), max_body_chars=MAX_BODY)
    await production.open(CID, PARTICIPANTS)
    before_ms = int(time.time() * 1000)
    result = await production.append(CID, PATIENT, "m1", "text", "now")
    server_s, _ = await redis.time()
    assert abs(result.ts_ms - server_s * 1000) < 5000
    assert abs(result.ts_ms - before_ms) < 60_000


def test_transcript_scripts_exist_and_their_keys_share_one_slot() -> None:
    names = {
        "transcript_open",
        "transcript_append",
        "transcript_mark_read",
        "transcript_mark_delivered",
        "transcript_close",
    }
    assert names <= set(script_names())
    for cid in ("c-1", "长-2", "x" * 64):
        slots = {key_slot(key.encode()) for key in transcript_keys(cid)}
        slots.add(key_slot(keys.transcript_channel(cid).encode()))
        assert len(slots) == 1, cid


def test_a_notice_without_or_with_a_broken_entry_is_still_a_hint() -> None:
    bare = parse_notice("123:7")
    broken = parse_notice('123:8:{"sender": "p1"')
    assert (bare.epoch, bare.seq, bare.entry) == ("123", 7, None)  # type: ignore[union-attr]
    assert (broken.seq, broken.entry) == (8, None)  # type: ignore[union-attr]
    assert parse_notice("t:doctor") is not None and parse_notice("nonsense") is None


# Read and delivery marks


async def _mark_notices(pubsub: PubSub) -> list[str]:
    """The mark notices published so far ("r:…" and "d:…"), waiting briefly for stragglers."""
    seen: list[str] = []
    while message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2):
        if str(message["data"])[:2] in ("r:", "d:"):
            seen.append(str(message["data"]))
    return seen


@pytest.fixture
async def channel(redis: Redis) -> AsyncIterator[PubSub]:
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.transcript_channel(CID))
    confirmation = await pubsub.get_message(timeout=5.0)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    try:
        yield pubsub
    finally:
        await pubsub.aclose()


async def test_a_delivery_mark_never_goes_down_and_is_announced_only_when_it_rises(
    transcripts: Transcripts, channel: PubSub
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 5)

    assert await transcripts.mark_delivered(CID, DOCTOR, 3) == 3
    assert await transcripts.mark_delivered(CID, DOCTOR, 2) == 3  # lower: nothing changes
    assert await transcripts.mark_delivered(CID, DOCTOR, 3) == 3  # the same: nothing changes
    assert await transcripts.mark_delivered(CID, DOCTOR, 4) == 4

    assert await _mark_notices(channel) == ["d:doctor:3", "d:doctor:4"]
    marks = await transcripts.marks(CID)
    assert (marks.read, marks.delivered) == ({}, {"doctor": 4})


async def test_marks_past_the_last_message_count_as_the_last(
    transcripts: Transcripts, channel: PubSub
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 2)

    assert await transcripts.mark_delivered(CID, DOCTOR, 99) == 2
    assert await transcripts.mark_read(CID, PATIENT, 50) == 2
    await send(transcripts, 3)  # m1 and m2 again (duplicates), then seq 3
    assert await transcripts.mark_delivered(CID, DOCTOR, 99) == 3

    assert await _mark_notices(channel) == ["d:doctor:2", "r:patient:2", "d:doctor:3"]
    marks = await transcripts.marks(CID)
    assert (marks.read, marks.delivered) == ({"patient": 2}, {"doctor": 3, "patient": 2})


async def test_a_rising_read_mark_raises_the_delivery_mark_with_it(
    transcripts: Transcripts, channel: PubSub
) -> None:
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 6)
    await transcripts.mark_delivered(CID, DOCTOR, 2)

    assert await transcripts.mark_read(CID, DOCTOR, 4) == 4
    # Delivery at or below the read mark is already known: nothing changes, nobody is told.
    assert await transcripts.mark_delivered(CID, DOCTOR, 3) == 4
    assert await transcripts.mark_delivered(CID, DOCTOR, 4) == 4
    assert await transcripts.mark_delivered(CID, DOCTOR, 6) == 6
    assert await transcripts.mark_read(CID, DOCTOR, 5) == 5  # below delivery: it stays at 6
    assert await transcripts.mark_read(CID, DOCTOR, 3) == 5  # lower: nothing changes

    # The read notice stands for the delivery it raised: no "d:doctor:4" of its own.
    assert await _mark_notices(channel) == ["d:doctor:2", "r:doctor:4", "d:doctor:6", "r:doctor:5"]
    marks = await transcripts.marks(CID)
    assert (marks.read, marks.delivered) == ({"doctor": 5}, {"doctor": 6})


async def test_a_read_mark_without_a_delivery_mark_counts_as_delivery(
    transcripts: Transcripts, redis: Redis
) -> None:
    # A transcript marked read before delivery marks existed holds `r:<user>` alone.
    await transcripts.open(CID, PARTICIPANTS)
    await send(transcripts, 3)
    await redis.hset(keys.transcript_meta(CID), f"r:{PATIENT}", 2)

    assert (await transcripts.marks(CID)).delivered == {"patient": 2}
    assert await transcripts.mark_delivered(CID, PATIENT, 1) == 2
    assert await transcripts.mark_delivered(CID, PATIENT, 3) == 3


async def test_marks_are_refused_before_open_and_for_non_participants(
    transcripts: Transcripts,
) -> None:
    with pytest.raises(TranscriptNotOpen):
        await transcripts.mark_delivered(CID, PATIENT, 1)
    await transcripts.open(CID, PARTICIPANTS)
    with pytest.raises(NotParticipant):
        await transcripts.mark_delivered(CID, "stranger", 1)
    with pytest.raises(NotParticipant):
        await transcripts.mark_read(CID, "stranger", 1)
    with pytest.raises(ValueError):
        await transcripts.mark_delivered(CID, PATIENT, -1)
    marks = await transcripts.marks(CID)
    assert (marks.read, marks.delivered) == ({}, {})


def test_mark_notices_parse_by_their_head() -> None:
    assert parse_notice("d:patient:7") == DeliveredMark(role="patient", seq=7)
    assert parse_notice("r:doctor:2") == ReadMark(role="doctor", seq=2)
    assert parse_notice("d:patient:") is None and parse_notice("d:patient:x") is None
