"""A build's log: written by the worker that holds the job, read back by byte offset, followed live.

The worker publishes each piece of output on the event bus the moment it arrives, with its
byte offset, and stores it in the database a little later, in chunks (every
``flush_interval`` or ``flush_bytes``). A follower subscribes first, then reads what is
stored from its offset, then takes live events, skipping what it has and reading the
store again to fill any gap: so it misses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models.builds import QUEUED, RUNNING
from labfleet.db.repositories import builds as repo
from labfleet.errors import NotFound
from labfleet.services.builds import service as builds
from labfleet.services.core.events import EventBus
from labfleet.services.core.leases import LeaseLost

log = logging.getLogger(__name__)

_FOLLOW_POLL = 1.0
_GAP_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class LogKind:
    """Whose logs these are: builds' or pipelines' (the same mechanics on their own tables)."""

    what: str  # "build job"
    key: str  # the id's name in log events: "job"
    topic: Callable[[int], str]
    append: Callable[..., Awaitable[bool]]  # (session, *, job_id, worker, offset, data)
    read: Callable[[AsyncSession, int, int, int], Awaitable[bytes]]  # (session, id, offset, limit)
    state: Callable[[AsyncSession, int], Awaitable[tuple[int, str] | None]]  # stored size, status
    active: tuple[str, ...]
    read_limit: int


async def _build_read(session: AsyncSession, job_id: int, offset: int, limit: int) -> bytes:
    return (await repo.read_log(session, job_id=job_id, offset=offset, limit=limit))[1]


async def _build_state(session: AsyncSession, job_id: int) -> tuple[int, str] | None:
    job = await repo.get(session, job_id, refresh=True)
    return None if job is None else (job.log_size, job.status)


BUILD_LOGS = LogKind(
    what="build job",
    key="job",
    topic=builds.topic,
    append=repo.append_log,
    read=_build_read,
    state=_build_state,
    active=(QUEUED, RUNNING),
    read_limit=builds.LOG_READ_LIMIT,
)


class JobLog:
    """The log of one attempt, appended by the worker that holds the job."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        job_id: int,
        worker: str,
        offset: int,
        flush_interval: float = 0.25,
        flush_bytes: int = 256 * 1024,
        kind: LogKind = BUILD_LOGS,
    ) -> None:
        self._kind = kind
        self._sessions = sessions
        self._bus = bus
        self.job_id = job_id
        self._worker = worker
        self._topic = kind.topic(job_id)
        self._stored = offset
        self._end = offset
        self._pending = bytearray()
        self._interval = flush_interval
        self._limit = flush_bytes
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self.lost = False
        self._tail: list[str] = []
        self._line_start = True

    @property
    def size(self) -> int:
        return self._end

    def write(self, text: str) -> None:
        if not text:
            return
        data = text.encode()
        self._bus.publish(
            self._topic, {"type": "log", self._kind.key: self.job_id, "offset": self._end, "data": text}
        )
        self._pending += data
        self._end += len(data)
        self._tail = (self._tail + text.splitlines())[-20:]
        self._line_start = text.endswith("\n")
        if len(self._pending) >= self._limit:
            self._full.set()

    def note(self, line: str) -> None:
        """A line from labfleet itself, set apart from the build's own output (on a line of its own)."""
        self.write(f"{'' if self._line_start else chr(10)}labfleet: {line}\n")

    def tail(self, lines: int = 5) -> str:
        """The last lines written, for a failure's reason."""
        return "\n".join(line for line in self._tail[-lines:] if line.strip())

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending or self.lost:
                return
            data = bytes(self._pending)
            async with self._sessions() as session:
                ok = await self._kind.append(
                    session, job_id=self.job_id, worker=self._worker, offset=self._stored, data=data
                )
                await session.commit()
            if not ok:
                self.lost = True
                raise LeaseLost(f"{self._kind.what} {self.job_id}: no longer held by {self._worker}")
            del self._pending[: len(data)]
            self._stored += len(data)

    async def run(self) -> None:
        """Flush periodically until cancelled (then once more, by the caller), or until the
        lease is lost. A flush that fails (the database away) keeps its bytes for the next."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._full.wait()
            self._full.clear()
            try:
                await self.flush()
            except LeaseLost:
                return
            except Exception as exc:
                log.warning("%s %s: storing its log failed, retrying: %s", self._kind.what, self.job_id, exc)


@dataclass(frozen=True, slots=True)
class Piece:
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Status:
    """A status change of the job, in order with the log around it."""

    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class End:
    status: str
    size: int


def complete_utf8(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut at its end (at most 3 bytes held back)."""
    for back in range(1, min(4, len(data) + 1)):
        byte = data[-back]
        if byte < 0x80:
            return data  # ASCII: nothing is cut
        if byte >= 0xC0:  # the lead byte of the last character
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
    return data  # no lead byte within reach: not UTF-8 to begin with; pass it on


async def _stored(
    sessions: async_sessionmaker[AsyncSession], job_id: int, position: int, kind: LogKind
) -> tuple[bytes, int, str]:
    """What is stored from ``position`` (cut at a character), the stored size and the status."""
    async with sessions() as session:
        state = await kind.state(session, job_id)
        if state is None:
            raise NotFound(f"no {kind.what} with id {job_id}", field="id")
        size, status = state
        if position >= size:
            return b"", size, status
        data = await kind.read(session, job_id, position, kind.read_limit)
    final = status not in kind.active and position + len(data) >= size
    return (data if final else complete_utf8(data)), size, status


async def follow(
    *,
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus,
    job_id: int,
    offset: int = 0,
    kind: LogKind = BUILD_LOGS,
) -> AsyncIterator[Piece | Status | End]:
    """The log from ``offset``: what is stored, then live, until the job has finished and all is out.

    Yields pieces of the log (each at the byte offset where the last one ended, never cutting
    a UTF-8 character), the job's status changes in order with them, and at last ``End``
    (the final status and size). Works for a job run by another process too: events cross
    processes on PostgreSQL, and the store is read again whenever the live stream is quiet
    or ahead of what was sent. Returns without ``End`` only if this subscriber lagged: the
    caller resumes from the last offset it has.
    """
    position = offset
    pending: dict[str, object] | None = None
    async with bus.listening([kind.topic(job_id)]) as sub:
        while True:
            data, size, status = await _stored(sessions, job_id, position, kind)
            if data:
                yield Piece(position, data)
                position += len(data)
                continue
            if pending is not None:
                yield Status(pending)
                pending = None
            if status not in kind.active and position >= size:
                yield End(status, size)
                return
            # Caught up with the store: take live events until one is ahead of us or all is quiet.
            while True:
                event = await sub.get(timeout=_FOLLOW_POLL)
                if sub.lagged:
                    return
                if event is None:
                    break  # quiet: look at the store again
                event_type = event.data.get("type")
                if event_type == "status":
                    pending = event.data  # after the log stored up to it
                    break
                if event_type != "log":
                    continue
                start = int(event.data["offset"])
                piece = str(event.data["data"]).encode()
                if start + len(piece) <= position:
                    continue
                if start > position:
                    # Output we have not seen and the store has not got yet: wait for the flush.
                    await _await_stored(sessions, job_id, start, kind)
                    break
                yield Piece(position, piece[position - start :])
                position = start + len(piece)


async def _await_stored(
    sessions: async_sessionmaker[AsyncSession], job_id: int, upto: int, kind: LogKind
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _GAP_WAIT
    while loop.time() < deadline:
        async with sessions() as session:
            state = await kind.state(session, job_id)
        if state is None or state[0] >= upto or state[1] not in kind.active:
            return
        await asyncio.sleep(0.05)
