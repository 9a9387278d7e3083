"""The chatsvc client: one WebSocket (the `websockets` library), the protocol's frames, and the
bookkeeping a chat client needs.

- Requests (frames with an `id`) return the server's reply, or raise `ChatError` with the
  error frame's code.
- Frames the server sends on its own (`assigned`, `queued`, `message`, ...) land in an inbox;
  `next(...)` waits for the next one of a kind.
- Messages are kept per consultation by seq, so a message seen twice (a live frame and a
  fetch) is held once; `duplicates` counts live `message` frames for a seq already held, which
  a correct server never sends.
- `send` retries an unacknowledged message with the same `client_msg_id` (and frame id), after
  reconnecting if the socket dropped, so a lost ack never stores a message twice.
- A dropped connection is resumed by itself (unless the server closed it for good: a refused
  or expired token, abuse): it reconnects with back-off, to the next of its URLs, and its
  `hello` lists where it stands in each consultation, so it receives everything after, then
  live messages, with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from chatsvc.protocol import frames as f
from chatsvc.protocol.codec import Encoding, decode_outbound, encode
from chatsvc.protocol.errors import ErrorCode

T = TypeVar("T", bound=f.Frame)

# How long a request waits for its reply before it counts as lost.
REQUEST_TIMEOUT_S = 10.0
# Attempts of one `send` (the first and the retries) before giving up: enough to ride out a
# gateway restart (each attempt waits for the resume, up to REQUEST_TIMEOUT_S).
SEND_ATTEMPTS = 6
# A send refused for the frame rate waits about this long (with jitter) and tries again.
RATE_LIMITED_WAIT_S = 0.1
RATE_LIMITED_RETRIES = 50
# Close codes after which reconnecting cannot help: the token or the behaviour must change.
TERMINAL_CLOSE_CODES = frozenset({4001, 4002, 4003, 4008, 4010})
# Reconnect back-off: first retry after this, doubling up to the cap, for this many attempts.
RECONNECT_FIRST_S = 0.05
RECONNECT_CAP_S = 2.0
RECONNECT_ATTEMPTS = 40


class ChatError(Exception):
    """The server answered a request with an error frame."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref


@dataclass
class Thread:
    """What this client holds of one consultation's transcript."""

    epoch: str = ""
    messages: dict[int, f.MessageEntry] = field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        return max(self.messages, default=0)

    @property
    def unbroken_seq(self) -> int:
        """The last seq held with every message before it (from the first held): where a
        resume must start so that a gap is filled, not hidden."""
        if not self.messages:
            return 0
        seq = min(self.messages)
        while seq + 1 in self.messages:
            seq += 1
        return seq if min(self.messages) == 1 else 0

    def in_order(self) -> list[f.MessageEntry]:
        return [self.messages[seq] for seq in sorted(self.messages)]


class ChatClient:
    def __init__(
        self,
        url: str | list[str],
        token: str,
        encoding: Encoding = Encoding.JSON,
        lang: str = "",
        origin: str | None = None,
        auto_resume: bool = True,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        self.url = self.urls[0]
        self.auto_resume = auto_resume
        self.resumes = 0  # reconnections made by itself
        self.token = token
        self.encoding = encoding
        self.lang = lang
        self.origin = origin
        self.welcome: f.Welcome | None = None
        self.threads: dict[str, Thread] = {}
        self.duplicates = 0
        self.inbox: deque[f.Outbound] = deque()
        self.close_code: int | None = None
        self.close_codes: list[int | None] = []  # every socket's close code, oldest first
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[f.Outbound]] = {}
        self._arrived = asyncio.Condition()
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._closing = False  # close() was called: no resume
        self._welcomed = False
        self._background: set[asyncio.Task[None]] = set()
        self._resuming: asyncio.Task[None] | None = None
        # Called with (consultation, entry) for each message the moment its frame is read (live
        # or fetched): for an application that times or counts arrivals itself.
        self.on_message: Callable[[str, f.MessageEntry], None] | None = None

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> f.Welcome:
        """Open the socket and say hello; returns the welcome (raises ChatError if refused)."""
        headers = {"Origin": self.origin} if self.origin else None
        self._ws = await websockets.connect(
            self.url,
            subprotocols=[websockets.Subprotocol(self.encoding.value)],
            additional_headers=headers,
            max_size=None,
        )
        self.close_code = None
        self._welcomed = False
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(self._ws))
        hello = f.Hello(
            token=self.token, lang=self.lang, resume=self.resume_points(), id=self._next_id()
        )
        reply = await self.request(hello)
        assert isinstance(reply, f.Welcome)
        self._welcomed = True
        async with self._arrived:  # whoever waits for the connection: it is up
            self._arrived.notify_all()
        self.welcome = reply
        return reply

    def resume_points(self) -> list[f.ResumePoint]:
        """Where this client stands in each consultation it holds."""
        return [
            f.ResumePoint(consultation=cid, epoch=thread.epoch, seq=thread.unbroken_seq)
            for cid, thread in self.threads.items()
            if thread.epoch
        ][: f.MAX_RESUME_POINTS]

    async def reconnect(self) -> f.Welcome:
        """Close, then connect again, resuming every consultation held."""
        await self.close()
        self._closing = False
        return await self.connect()

    async def close(self) -> None:
        self._closing = True
        if self._resuming is not None:
            self._resuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resuming
            self._resuming = None
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._ws = None
        self._reader = None

    async def _resume(self) -> None:
        """Reconnect with back-off, moving through the URLs, until it works or gives up. With
        several URLs it starts with the next one: the one that dropped it may be going away."""
        delay = RECONNECT_FIRST_S
        if len(self.urls) > 1:
            self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
        for _attempt in range(RECONNECT_ATTEMPTS):
            try:
                await self.connect()
            except ChatError as error:
                if error.code == ErrorCode.AUTH_FAILED.value:
                    return  # a new token is needed: nothing to retry
            except (
                OSError,
                TimeoutError,
                websockets.InvalidHandshake,
                websockets.ConnectionClosed,
            ):
                pass
            else:
                self.resumes += 1
                return
            self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
            await asyncio.sleep(delay)
            delay = min(RECONNECT_CAP_S, delay * 2)

    @property
    def resuming(self) -> bool:
        return self._resuming is not None and not self._resuming.done()

    async def wait_connected(self, timeout: float = REQUEST_TIMEOUT_S) -> None:
        """Wait until the socket is up again (after a drop that is being resumed)."""
        async with asyncio.timeout(timeout):
            async with self._arrived:
                while not self.connected:
                    if self._gone():
                        raise ConnectionError(f"closed ({self.close_code})")
                    await self._arrived.wait()

    def _gone(self) -> bool:
        """Closed for good: the reader has finished and no resume is under way. (A socket that
        is just closing, or still saying hello, is not gone yet.)"""
        reading = self._reader is not None and not self._reader.done()
        return not reading and not self.resuming

    async def __aenter__(self) -> ChatClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """The socket is up and welcomed (a socket still saying hello does not count)."""
        return (
            self._welcomed
            and self._ws is not None
            and self._reader is not None
            and not self._reader.done()
        )

    # -- requests -----------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def request(self, frame: f.Inbound, timeout: float = REQUEST_TIMEOUT_S) -> f.Outbound:
        """Send a frame that has an id and return the reply that refers to it."""
        frame_id = frame.id
        assert frame_id is not None, "requests carry an id"
        future: asyncio.Future[f.Outbound] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = future
        try:
            await self.send_frame(frame)
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(frame_id, None)
        if isinstance(reply, f.Error):
            raise ChatError(reply.code.value, reply.message, reply.ref)
        return reply

    async def send_frame(self, frame: f.Inbound) -> None:
        """Send without waiting for anything (typing, read marks, raw frames in tests)."""
        if self._ws is None:
            raise ConnectionError("not connected")
        payload = encode(frame, self.encoding)
        await self._ws.send(payload.decode() if self.encoding is Encoding.JSON else payload)

    async def send_raw(self, data: str | bytes) -> None:
        """Send bytes as they are (malformed-input tests)."""
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(data)

    # -- receiving ----------------------------------------------------------------------------

    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                await self._receive(decode_outbound(data, self.encoding))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.close_codes.append(ws.close_code)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            if (
                self.auto_resume
                and not self._closing
                and not self.resuming  # an attempt of a resume under way failed: it retries
                and ws is self._ws
                and self.welcome is not None
                and self.close_code not in TERMINAL_CLOSE_CODES
            ):
                self._resuming = asyncio.get_running_loop().create_task(self._resume())
            async with self._arrived:
                self._arrived.notify_all()

    async def _receive(self, frame: f.Outbound) -> None:
        if isinstance(frame, f.Message):
            thread = self.threads.setdefault(frame.consultation, Thread())
            if frame.entry.seq in thread.messages:
                self.duplicates += 1
            thread.epoch = frame.epoch
            thread.messages[frame.entry.seq] = frame.entry
            if self.on_message is not None:
                self.on_message(frame.consultation, frame.entry)
        elif isinstance(frame, f.Messages):
            thread = self.threads.setdefault(frame.consultation, Thread())
            thread.epoch = frame.epoch
            for entry in frame.entries:
                thread.messages.setdefault(entry.seq, entry)
                if self.on_message is not None:
                    self.on_message(frame.consultation, entry)
        elif isinstance(frame, f.Reset):
            # The server sends again every message it still holds, from the first.
            self.threads[frame.consultation] = Thread(epoch=frame.epoch)
        elif isinstance(frame, f.Assigned):
            self._hold(frame.consultation, frame.epoch, frame.last_seq)
        elif isinstance(frame, f.Opened | f.Offered):
            self._hold(frame.consultation.id, frame.consultation.epoch, frame.consultation.last_seq)
        ref = getattr(frame, "ref", None)
        future = self._pending.get(ref) if ref is not None else None
        if future is not None and not future.done():
            future.set_result(frame)
        else:
            self.inbox.append(frame)
        async with self._arrived:
            self._arrived.notify_all()

    def _hold(self, consultation: str, epoch: str, last_seq: int) -> None:
        """A consultation this client takes part in. Messages up to `last_seq` were stored
        before it was told (live ones follow): fetch those it lacks, in the background."""
        thread = self.threads.setdefault(consultation, Thread())
        new = not thread.epoch  # one already held was resumed: the server sends what follows
        if new:
            thread.epoch = epoch
        if new and epoch and last_seq > thread.unbroken_seq:
            task = asyncio.get_running_loop().create_task(self._catch_up_quietly(consultation))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _catch_up_quietly(self, consultation: str) -> None:
        with contextlib.suppress(ChatError, ConnectionError, TimeoutError):
            await self.catch_up(consultation, self.threads[consultation].unbroken_seq)

    async def next(
        self,
        kind: type[T],
        where: Callable[[T], bool] = lambda _frame: True,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> T:
        """Take the first inbox frame of `kind` that matches `where`, waiting for it."""

        def find() -> T | None:
            for frame in self.inbox:
                if isinstance(frame, kind) and where(frame):
                    self.inbox.remove(frame)
                    return frame
            return None

        async with asyncio.timeout(timeout):
            async with self._arrived:
                while (found := find()) is None:
                    if self._gone():
                        raise ConnectionError(
                            f"closed ({self.close_code}) before a {kind.__name__}"
                        )
                    await self._arrived.wait()
        return found

    async def wait_for_messages(self, consultation: str, count: int, timeout: float = 30) -> Thread:
        """Wait until `count` messages of the consultation are held (by seq)."""
        async with asyncio.timeout(timeout):
            async with self._arrived:
                while len(self.threads.get(consultation, Thread()).messages) < count:
                    if self._gone():
                        raise ConnectionError("closed while waiting for messages")
                    await self._arrived.wait()
        return self.threads[consultation]

    # -- the protocol, one method per command ---------------------------------------------------

    async def renew(self, token: str) -> f.Renewed:
        reply = await self.request(f.Renew(token=token, id=self._next_id()))
        assert isinstance(reply, f.Renewed)
        self.token = token
        return reply

    async def ping(self) -> f.Pong:
        reply = await self.request(f.Ping(id=self._next_id()))
        assert isinstance(reply, f.Pong)
        return reply

    async def quote(self, department: str) -> f.Quoted:
        reply = await self.request(f.QuoteRequest(department=department, id=self._next_id()))
        assert isinstance(reply, f.Quoted)
        return reply

    async def join(
        self,
        department: str,
        symptoms: str,
        age_band: f.AgeBand = "",
        duration: f.Duration = "",
        consent: bool = True,
        notice_acknowledged: bool = True,
    ) -> f.Joined:
        frame = f.Join(
            department=department,
            intake=f.IntakeForm(symptoms=symptoms, age_band=age_band, duration=duration),
            consent=consent,
            notice_acknowledged=notice_acknowledged,
            id=self._next_id(),
        )
        reply = await self.request(frame)
        assert isinstance(reply, f.Joined)
        return reply

    async def leave(self) -> f.Left:
        reply = await self.request(f.Leave(id=self._next_id()))
        assert isinstance(reply, f.Left)
        return reply

    async def set_status(self, status: f.DoctorStatusName) -> f.StatusChanged:
        reply = await self.request(f.SetStatus(status=status, id=self._next_id()))
        assert isinstance(reply, f.StatusChanged)
        return reply

    async def take_next(self) -> f.ConsultationView:
        reply = await self.request(f.TakeNext(id=self._next_id()))
        assert isinstance(reply, f.Opened)
        self.threads.setdefault(reply.consultation.id, Thread(epoch=reply.consultation.epoch))
        return reply.consultation

    async def accept(self, consultation: str) -> f.ConsultationView:
        reply = await self.request(f.Accept(consultation=consultation, id=self._next_id()))
        assert isinstance(reply, f.Opened)
        self.threads.setdefault(reply.consultation.id, Thread(epoch=reply.consultation.epoch))
        return reply.consultation

    async def end(self, consultation: str, summary: str = "") -> f.Ended:
        reply = await self.request(
            f.End(consultation=consultation, summary=summary, id=self._next_id())
        )
        assert isinstance(reply, f.Ended)
        return reply

    async def transfer(
        self, consultation: str, department: str | None = None, doctor: str | None = None
    ) -> f.Released:
        frame = f.Transfer(
            consultation=consultation, department=department, doctor=doctor, id=self._next_id()
        )
        reply = await self.request(frame)
        assert isinstance(reply, f.Released)
        return reply

    async def patient_history(self, consultation: str) -> f.History:
        reply = await self.request(f.PatientHistory(consultation=consultation, id=self._next_id()))
        assert isinstance(reply, f.History)
        return reply

    async def send(
        self,
        consultation: str,
        text: str,
        client_msg_id: str | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> f.Ack:
        """Store a message; retried under the same client_msg_id until acknowledged."""
        cmid = client_msg_id or uuid.uuid4().hex
        frame = f.Send(consultation=consultation, client_msg_id=cmid, text=text, id=f"send-{cmid}")
        last_error: Exception | None = None
        attempts = slowed = 0
        while attempts < SEND_ATTEMPTS:
            try:
                if not self.connected:
                    # Being resumed: wait for it. Closed for good: wait_connected raises.
                    await self.wait_connected(timeout)
                reply = await self.request(frame, timeout)
            except ChatError as error:
                if error.code == ErrorCode.RATE_LIMITED.value and slowed < RATE_LIMITED_RETRIES:
                    slowed += 1  # over the server's frame rate: wait for the bucket to refill
                    await asyncio.sleep(RATE_LIMITED_WAIT_S * (1 + random.random()))
                    continue
                if error.code != ErrorCode.UNAVAILABLE.value:
                    raise
                last_error = error
            except TimeoutError as error:  # no reply in time: retry on the same socket
                last_error = error
            except (ConnectionError, websockets.ConnectionClosed, OSError) as error:
                # This socket failed: wait for the next one rather than retry on it at once.
                self._welcomed = False
                last_error = error
            else:
                assert isinstance(reply, f.Ack)
                return reply
            attempts += 1
        raise ConnectionError(f"message not acknowledged after {SEND_ATTEMPTS} attempts") from (
            last_error
        )

    async def typing(self, consultation: str) -> None:
        await self.send_frame(f.TypingSignal(consultation=consultation))

    async def mark_read(self, consultation: str, seq: int) -> None:
        await self.send_frame(f.MarkRead(consultation=consultation, seq=seq))

    async def mark_delivered(self, consultation: str, seq: int) -> None:
        """Tell the other side that messages up to `seq` reached this client. Never sent on
        its own: the caller decides when a message counts as received (shown, stored)."""
        await self.send_frame(f.MarkDelivered(consultation=consultation, seq=seq))

    async def fetch(
        self, consultation: str, after_seq: int = 0, limit: int = 100, epoch: str | None = None
    ) -> f.Messages | f.Reset:
        reply = await self.request(
            f.Fetch(
                consultation=consultation,
                after_seq=after_seq,
                limit=limit,
                epoch=epoch,
                id=self._next_id(),
            )
        )
        assert isinstance(reply, f.Messages | f.Reset)
        return reply

    async def catch_up(self, consultation: str, after_seq: int = 0) -> Thread:
        """Fetch every message after `after_seq`, page by page."""
        while True:
            page = await self.fetch(consultation, after_seq, f.MAX_FETCH_LIMIT)
            if isinstance(page, f.Reset):
                if after_seq == 0:  # even the start is gone: nothing more to fetch
                    return self.threads.setdefault(consultation, Thread(epoch=page.epoch))
                after_seq = 0
                continue
            if not page.entries or page.entries[-1].seq >= page.last_seq:
                return self.threads.setdefault(consultation, Thread())
            after_seq = page.entries[-1].seq

    async def open(self, consultation: str) -> f.ConsultationView:
        reply = await self.request(f.Open(consultation=consultation, id=self._next_id()))
        assert isinstance(reply, f.Opened)
        return reply.consultation

    async def list_consultations(self, department: str | None = None) -> list[f.ConsultationView]:
        reply = await self.request(f.ListConsultations(department=department, id=self._next_id()))
        assert isinstance(reply, f.ConsultationList)
        return reply.items

    async def list_audit(self, limit: int = 100, before: str | None = None) -> list[f.AuditEntry]:
        reply = await self.request(f.ListAudit(limit=limit, before=before, id=self._next_id()))
        assert isinstance(reply, f.AuditList)
        return reply.entries
