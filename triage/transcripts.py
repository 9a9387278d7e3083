"""A consultation's transcript: one Redis Stream, numbered by an epoch and a gapless seq.

This module owns the transcript keys of `keys.py` (`transcript_*`, tagged `{c:<id>}` so one
script touches one slot) and the scripts that change them: `transcript_open`,
`transcript_append`, `transcript_mark_read`, `transcript_mark_delivered` and `transcript_close`.
Reads are plain commands in one MULTI.

The position model (after centrifuge's epoch + offset): every message gets seq 1, 2, 3, ... with
no gap, so a reader can tell it missed something; the epoch changes whenever the numbering can no
longer be trusted (the meta hash or the stream was lost and re-created), and a reader holding an
old epoch or a position no longer held is told so by an exception, never served a silent gap.
Pub/sub carries only hints, parsed by `parse_notice`: "<epoch>:<seq>:<entry JSON>" for a new
message (the entry spares a reader already at seq - 1 a read; the stream is the truth),
"t:<role>" for typing (ephemeral, never stored), "r:<role>:<seq>" for a read mark (stored in
the meta as `r:<user>`) and "d:<role>:<seq>" for a delivery mark (`d:<user>`; a read mark
implies delivery, so a rising read mark raises it too, without a "d:" notice of its own).

It must never log or raise with message bodies in the text: ids and lengths only.

Errors (each leaf has a stable `code`):

TriageError
└── TranscriptError            root of this module's refusals
    ├── TranscriptNotOpen      append/close: no meta (never opened, or lost: open again)
    ├── TranscriptNotFound     read/export: no transcript to read
    ├── TranscriptClosed       append after close
    ├── NotParticipant         the sender is not a participant
    ├── RoleConflict           open gave a participant a role other than the one held
    ├── InvalidMessage         kind, client_msg_id or body malformed (checked before Redis)
    │   └── MessageTooLong     body longer than the configured limit
    └── ResetRequired          the reader's position cannot be served: start again
        ├── EpochChanged       the reader holds another epoch
        ├── PositionExpired    entries after the position were trimmed or expired
        └── PositionAhead      the position is past the last message
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, NamedTuple

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from triage import keys
from triage.batching import ScriptBatcher
from triage.errors import ScriptError, TriageError
from triage.scripts import Scripts

# A client_msg_id is echoed in every reply, like a frame id: the same bound as the protocol's.
MAX_CLIENT_MSG_ID_CHARS = 128
# Kinds are a small closed vocabulary ("text", "system", ...): short lowercase identifiers.
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
# One read returns at most this many entries, so a resume is paged, not one giant XRANGE.
MAX_READ_LIMIT = 1000
# Exports read this many entries per round trip: big enough to be quick, small enough to keep
# each reply (4,000-char bodies at most) to a few megabytes.
EXPORT_PAGE_SIZE = 500


class TranscriptError(TriageError):
    """Root of the transcript refusals; `code` names the refusal for callers and clients."""

    code: ClassVar[str] = "transcript_error"


class TranscriptNotOpen(TranscriptError):
    """Raised by append and close when the transcript's meta is missing: it was never opened,
    or it was lost (then `open` starts a new epoch and the numbering continues)."""

    code = "not_open"


class TranscriptNotFound(TranscriptError):
    """Raised by read and the exports when the consultation has no readable transcript."""

    code = "not_found"


class TranscriptClosed(TranscriptError):
    """Raised by append on a closed transcript (unless it is a retry of a stored message)."""

    code = "closed"


class NotParticipant(TranscriptError):
    """Raised by append when the sender takes no part in the consultation; nothing is stored."""

    code = "not_participant"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"{user_id!r} is not a participant of this consultation")
        self.user_id = user_id


class RoleConflict(TranscriptError):
    """Raised by open when a participant is given a role other than the one they hold; the
    call changes nothing."""

    code = "role_conflict"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"{user_id!r} already takes part with another role")
        self.user_id = user_id


class InvalidMessage(TranscriptError):
    """Raised by append, before Redis is called, when kind, client_msg_id or body is
    malformed. `field` names which."""

    code = "invalid_message"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class MessageTooLong(InvalidMessage):
    """Raised by append, before Redis is called, when the body exceeds the configured limit."""

    code = "message_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__("body", f"{length} characters, the limit is {limit}")
        self.length = length
        self.limit = limit


class ResetRequired(TranscriptError):
    """The reader's position cannot be served; it must drop what it holds and read again."""


class EpochChanged(ResetRequired):
    """Raised by read when the caller's epoch is not the transcript's current one."""

    code = "epoch_changed"

    def __init__(self, held: str, current: str) -> None:
        super().__init__(f"epoch {held} is gone, the transcript is now at epoch {current}")
        self.held = held
        self.current = current


class PositionExpired(ResetRequired):
    """Raised by read when entries right after `after_seq` are no longer held (trimmed or
    expired); `first_seq` is the first one still held (last_seq + 1 when none is)."""

    code = "position_expired"

    def __init__(self, after_seq: int, first_seq: int) -> None:
        super().__init__(f"no entries held after seq {after_seq}: the first is {first_seq}")
        self.after_seq = after_seq
        self.first_seq = first_seq


class PositionAhead(ResetRequired):
    """Raised by read when `after_seq` is past the last message: the caller's position did not
    come from this transcript's numbering."""

    code = "position_ahead"

    def __init__(self, after_seq: int, last_seq: int) -> None:
        super().__init__(f"seq {after_seq} is past the last message, {last_seq}")
        self.after_seq = after_seq
        self.last_seq = last_seq


class Position(NamedTuple):
    """Where a transcript stands: its epoch and the seq of its last message (0 when none)."""

    epoch: str
    seq: int


class Span(NamedTuple):
    """What a transcript holds: its epoch, its first held seq and its last seq."""

    epoch: str
    first_seq: int
    last_seq: int

    def holds(self, epoch: str, seq: int) -> bool:
        """Whether a reader at (epoch, seq) can be served what follows, with no gap."""
        return epoch == self.epoch and self.first_seq - 1 <= seq <= self.last_seq


@dataclass(frozen=True)
class AppendResult:
    entry_id: str  # the stream entry id, "<seq>-0"
    epoch: str
    seq: int
    ts_ms: int  # when the message was first stored (the one clock: Redis TIME)
    duplicate: bool  # a retry: the first message's position, nothing new stored


@dataclass(frozen=True)
class Entry:
    seq: int
    entry_id: str
    sender: str
    role: str
    kind: str
    body: str
    client_msg_id: str
    ts_ms: int


@dataclass(frozen=True)
class ReadResult:
    epoch: str
    last_seq: int  # the transcript's last seq when read, whatever `limit` cut
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class NewMessage:
    """A hint: the transcript reached `seq` in `epoch`, with that entry when the publisher sent
    it (a reader at seq - 1 delivers it as is; any other reads the stream)."""

    epoch: str
    seq: int
    entry: Entry | None = None


@dataclass(frozen=True)
class Typing:
    role: str


@dataclass(frozen=True)
class ReadMark:
    role: str
    seq: int


@dataclass(frozen=True)
class DeliveredMark:
    role: str
    seq: int


Notice = NewMessage | Typing | ReadMark | DeliveredMark
# The head of a mark notice -> its type.
_MARK_NOTICES: dict[str, type[ReadMark | DeliveredMark]] = {"r": ReadMark, "d": DeliveredMark}


@dataclass(frozen=True)
class Marks:
    """Per role, the highest seq any participant of that role has marked read, and the highest
    they have marked delivered (never below their read mark: what was read was delivered)."""

    read: dict[str, int]
    delivered: dict[str, int]


def parse_notice(payload: str) -> Notice | None:
    """A channel payload as a typed notice; None for one this version does not know."""
    head, _, rest = payload.partition(":")
    if head == "t" and rest:
        return Typing(role=rest)
    if (mark := _MARK_NOTICES.get(head)) is not None:
        role, _, seq = rest.partition(":")
        return mark(role=role, seq=int(seq)) if seq.isdigit() else None
    seq, _, body = rest.partition(":")
    if head and seq.isdigit():
        return NewMessage(epoch=head, seq=int(seq), entry=_entry_of_notice(int(seq), body))
    return None


class _NoticeEntry(msgspec.Struct, frozen=True):
    """The entry a message notification carries (transcript_append.lua's JSON)."""

    sender: str
    role: str
    kind: str
    body: str
    cmid: str
    ts: int | float  # cjson writes numbers with 14 significant digits: ms times fit


# Built once: every notification a gateway receives goes through it.
_NOTICE_ENTRY = msgspec.json.Decoder(_NoticeEntry)


def _entry_of_notice(seq: int, body: str) -> Entry | None:
    if not body:
        return None
    try:
        fields = _NOTICE_ENTRY.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # a hint all the same: the stream has the entry
    return Entry(
        seq=seq,
        entry_id=f"{seq}-0",
        sender=fields.sender,
        role=fields.role,
        kind=fields.kind,
        body=fields.body,
        client_msg_id=fields.cmid,
        ts_ms=int(fields.ts),
    )


_SCRIPT_ERRORS: dict[str, Callable[[str], TranscriptError]] = {
    TranscriptNotOpen.code: lambda _detail: TranscriptNotOpen("the transcript is not open"),
    TranscriptClosed.code: lambda _detail: TranscriptClosed("the transcript is closed"),
    NotParticipant.code: NotParticipant,
    RoleConflict.code: RoleConflict,
}


class Transcripts:
    """The transcript operations on one Redis client.

    `max_body_chars` is the caller's message limit (config `limits.max_message_chars`). `now`
    returns milliseconds and is for tests only: it overrides Redis TIME inside the scripts.
    """

    def __init__(
        self,
        client: Redis,
        scripts: Scripts,
        *,
        max_body_chars: int,
        now: Callable[[], int] | None = None,
        export_page_size: int = EXPORT_PAGE_SIZE,
    ) -> None:
        if max_body_chars < 1 or export_page_size < 1:
            raise ValueError("max_body_chars and export_page_size must be positive")
        self._client = client
        self._scripts = scripts
        # Every script call of a busy gateway turn goes to Redis in one pipeline.
        self._batcher = ScriptBatcher(client, scripts)
        self._max_body_chars = max_body_chars
        self._now = now
        self._export_page_size = export_page_size

    async def open(self, consultation_id: str, participants: Mapping[str, str]) -> Position:
        """Create the transcript if missing, then add the participants (user id -> role).

        Idempotent; calling again with new participants adds them (after a transfer). When the
        meta was lost, starts a new epoch and continues the seq. A closed transcript is left
        as it is. Raises RoleConflict if a participant already holds another role.
        """
        for user_id, role in participants.items():
            if not user_id or not role:
                raise ValueError("participant ids and roles must be non-empty")
        reply = await self._run(
            "transcript_open",
            consultation_id,
            [json.dumps(dict(participants), ensure_ascii=False)],
        )
        return Position(epoch=str(reply[1]), seq=int(reply[2]))

    async def append(
        self, consultation_id: str, sender: str, client_msg_id: str, kind: str, body: str
    ) -> AppendResult:
        """Store a message once per (sender, client_msg_id) and announce it on the channel.

        A retry returns the first message's position with `duplicate=True`. Raises
        InvalidMessage or MessageTooLong (before Redis), TranscriptNotOpen, NotParticipant or
        TranscriptClosed.
        """
        self._check_message(client_msg_id, kind, body)
        if not sender:
            raise ValueError("sender must be non-empty")
        reply = await self._run(
            "transcript_append",
            consultation_id,
            [keys.transcript_channel(consultation_id), sender, client_msg_id, kind, body],
        )
        return AppendResult(
            entry_id=str(reply[1]),
            epoch=str(reply[2]),
            seq=int(reply[3]),
            ts_ms=int(reply[4]),
            duplicate=bool(int(reply[5])),
        )

    async def mark_read(self, consultation_id: str, user_id: str, seq: int) -> int:
        """Record that `user_id` has read up to `seq` (never lowering an earlier mark; a seq
        past the last message counts as the last) and announce a raised mark on the channel.
        Their delivery mark rises with it. Returns the user's read mark after the call.
        Raises TranscriptNotOpen or NotParticipant."""
        return await self._mark("transcript_mark_read", consultation_id, user_id, seq)

    async def mark_delivered(self, consultation_id: str, user_id: str, seq: int) -> int:
        """Record that `user_id` has received up to `seq`, as `mark_read` does for reading: the
        mark never goes down (nor below the read mark), a seq past the last message counts as
        the last, a raised mark is announced. Returns the user's delivery mark after the call.
        Raises TranscriptNotOpen or NotParticipant."""
        return await self._mark("transcript_mark_delivered", consultation_id, user_id, seq)

    async def _mark(self, script: str, consultation_id: str, user_id: str, seq: int) -> int:
        if seq < 0:
            raise ValueError("seq must be 0 or more")
        reply = await self._run(
            script, consultation_id, [keys.transcript_channel(consultation_id), user_id, str(seq)]
        )
        return int(reply[1])

    async def signal_typing(self, consultation_id: str, role: str) -> None:
        """Tell whoever follows the consultation that `role` is typing. Nothing is stored."""
        await self._client.publish(keys.transcript_channel(consultation_id), f"t:{role}")

    async def position(self, consultation_id: str) -> Position | None:
        """The transcript's epoch and last seq, or None when it has none."""
        epoch, seq = await self._client.hmget(keys.transcript_meta(consultation_id), "epoch", "seq")
        return None if epoch is None else Position(epoch=epoch, seq=int(seq))

    async def span(self, consultation_id: str) -> Span | None:
        """The epoch and the first and last seq held (first > last when none is held), or None
        when there is no transcript."""
        stream = keys.transcript_stream(consultation_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.transcript_meta(consultation_id), "epoch", "seq")
            pipe.xrange(stream, min="-", max="+", count=1)
            (epoch, last), first = await pipe.execute()
        if epoch is None:
            return None
        last_seq = int(last)
        return Span(epoch, _seq_of(first[0][0]) if first else last_seq + 1, last_seq)

    async def positions(self, consultation_ids: list[str]) -> dict[str, Position]:
        """Each transcript's epoch and last seq, in one round trip (those without one left out)."""
        if not consultation_ids:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for consultation_id in consultation_ids:
                pipe.hmget(keys.transcript_meta(consultation_id), "epoch", "seq")
            rows = await pipe.execute()
        return {
            cid: Position(epoch, int(seq))
            for cid, (epoch, seq) in zip(consultation_ids, rows, strict=True)
            if epoch is not None
        }

    async def marks(self, consultation_id: str) -> Marks:
        """Each participant role's read and delivery marks (roles without a mark left out)."""
        meta = await self._client.hgetall(keys.transcript_meta(consultation_id))
        marks = Marks(read={}, delivered={})
        for field, value in meta.items():
            head, _, user = field.partition(":")
            if head not in _MARK_NOTICES or not (role := meta.get("p:" + user)):
                continue
            seq = int(value)
            if head == "r":
                marks.read[role] = max(marks.read.get(role, 0), seq)
            # A read mark counts as delivery too (a meta from before delivery marks has no d:).
            marks.delivered[role] = max(marks.delivered.get(role, 0), seq)
        return marks

    async def close(self, consultation_id: str, retention_s: int) -> Position:
        """Refuse further messages and let the transcript expire after `retention_s`.

        Idempotent: a second call changes nothing (nor the expiry). Returns the final position.
        Raises TranscriptNotOpen.
        """
        if retention_s < 1:
            raise ValueError("retention_s must be positive")
        reply = await self._run("transcript_close", consultation_id, [str(retention_s)])
        return Position(epoch=str(reply[1]), seq=int(reply[2]))

    async def read(
        self,
        consultation_id: str,
        after_seq: int = 0,
        limit: int = 100,
        epoch: str | None = None,
    ) -> ReadResult:
        """Up to `limit` messages after `after_seq`, oldest first.

        With `epoch` given, raises EpochChanged unless it is the current one. Raises
        PositionExpired when entries after `after_seq` are no longer held, PositionAhead when
        it is past the last message, TranscriptNotFound when there is no transcript.
        """
        if after_seq < 0:
            raise ValueError("after_seq must be 0 or more")
        if not 1 <= limit <= MAX_READ_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_READ_LIMIT}")
        stream = keys.transcript_stream(consultation_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.transcript_meta(consultation_id), "epoch", "seq")
            pipe.xrange(stream, min="-", max="+", count=1)
            pipe.xrange(stream, min=f"{after_seq + 1}-0", max="+", count=limit)
            (current, last), first, rows = await pipe.execute()
        if current is None:
            raise TranscriptNotFound(f"consultation {consultation_id!r} has no transcript")
        if epoch is not None and epoch != current:
            raise EpochChanged(held=epoch, current=current)
        last_seq = int(last)
        first_seq = _seq_of(first[0][0]) if first else last_seq + 1
        if after_seq > last_seq:
            raise PositionAhead(after_seq=after_seq, last_seq=last_seq)
        if after_seq < first_seq - 1:
            raise PositionExpired(after_seq=after_seq, first_seq=first_seq)
        entries = tuple(_entry(entry_id, fields) for entry_id, fields in rows)
        return ReadResult(epoch=current, last_seq=last_seq, entries=entries)

    async def export_json(self, consultation_id: str) -> str:
        """The held transcript as one JSON document: consultation, epoch, last_seq, entries."""
        epoch, last_seq, entries = await self._read_all(consultation_id)
        document = {
            "consultation": consultation_id,
            "epoch": epoch,
            "last_seq": last_seq,
            "entries": [{"time": _iso_utc(entry.ts_ms), **asdict(entry)} for entry in entries],
        }
        return json.dumps(document, ensure_ascii=False)

    async def export_text(self, consultation_id: str) -> str:
        """The held transcript as text, one line per message: `<ISO UTC time> <role> <sender>:
        <body>`, with backslashes and line breaks in the body escaped so a line stays a line."""
        _, _, entries = await self._read_all(consultation_id)
        return "".join(
            f"{_iso_utc(entry.ts_ms)} {entry.role} {entry.sender}: {_one_line(entry.body)}\n"
            for entry in entries
        )

    async def _read_all(self, consultation_id: str) -> tuple[str, int, list[Entry]]:
        """Every held entry, read page by page under one epoch (EpochChanged if it moves)."""
        entries: list[Entry] = []
        epoch: str | None = None
        last_seq = 0
        async for page in self._pages(consultation_id):
            epoch, last_seq = page.epoch, page.last_seq
            entries.extend(page.entries)
        assert epoch is not None  # _pages yields at least once or raises
        return epoch, last_seq, entries

    async def _pages(self, consultation_id: str) -> AsyncIterator[ReadResult]:
        size = self._export_page_size
        try:
            page = await self.read(consultation_id, 0, size)
        except PositionExpired as expired:  # the head was trimmed: export what is held
            page = await self.read(consultation_id, expired.first_seq - 1, size)
        yield page
        while page.entries and page.entries[-1].seq < page.last_seq:
            page = await self.read(consultation_id, page.entries[-1].seq, size, page.epoch)
            yield page

    def _check_message(self, client_msg_id: str, kind: str, body: str) -> None:
        if not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID_CHARS:
            raise InvalidMessage(
                "client_msg_id", f"must be 1 to {MAX_CLIENT_MSG_ID_CHARS} characters"
            )
        if not KIND_PATTERN.fullmatch(kind):
            raise InvalidMessage("kind", f"must match {KIND_PATTERN.pattern}")
        if not body:
            raise InvalidMessage("body", "is empty")
        if len(body) > self._max_body_chars:
            raise MessageTooLong(length=len(body), limit=self._max_body_chars)
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidMessage("body", "is not valid Unicode text") from None

    async def _run(self, name: str, consultation_id: str, args: list[str]) -> list[object]:
        """Run a transcript script; return its 'ok' reply or raise its typed refusal."""
        if not consultation_id:
            raise ValueError("consultation_id must be non-empty")
        now = "" if self._now is None else str(int(self._now()))
        try:
            reply = await self._batcher.run(name, transcript_keys(consultation_id), [now, *args])
        except ResponseError as error:
            raise ScriptError(f"{name} failed: {error}") from error
        assert isinstance(reply, list)
        if reply[0] == "ok":
            return list(reply)
        if reply[0] == "err" and (make := _SCRIPT_ERRORS.get(str(reply[1]))) is not None:
            raise make(str(reply[2]))
        raise ScriptError(f"{name} returned an unknown reply {reply[:2]!r}")


def transcript_keys(consultation_id: str) -> list[str]:
    """KEYS of every transcript script, in their order: meta, stream, dedup."""
    return [
        keys.transcript_meta(consultation_id),
        keys.transcript_stream(consultation_id),
        keys.transcript_dedup(consultation_id),
    ]


def _seq_of(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _entry(entry_id: str, fields: Mapping[str, str]) -> Entry:
    return Entry(
        seq=_seq_of(entry_id),
        entry_id=entry_id,
        sender=fields["sender"],
        role=fields["role"],
        kind=fields["kind"],
        body=fields["body"],
        client_msg_id=fields["cmid"],
        ts_ms=int(fields["ts"]),
    )


def _iso_utc(ts_ms: int) -> str:
    seconds, millis = divmod(ts_ms, 1000)
    moment = datetime.fromtimestamp(seconds, tz=UTC) + timedelta(milliseconds=millis)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ONE_LINE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r"})


def _one_line(body: str) -> str:
    return body.translate(_ONE_LINE)
