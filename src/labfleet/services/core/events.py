"""Events by topic: delivered at once in this process, across processes by PostgreSQL NOTIFY.

Topics name what an event is about: ``build-job:12`` (one job's log lines and status),
``build-jobs`` (every job's status), ``build-server:3``, ``alerts``. A subscriber names the
topics it wants, or ``*`` for all. Events are small JSON-able dicts; a log event carries
the byte ``offset`` of its ``data`` in the job's log, so that a reader can join the stored
log and the live stream without a gap or a repeat.

Delivery is at most once and never blocks the publisher: a subscriber that falls more than
``max_queue`` events behind is cut off with a ``lagged`` event and resumes from what is
stored (logs by offset, state by a fresh read). Nothing relies on an event for
correctness; they are how the screen, the CLI and sleeping workers learn early.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from labfleet.db.notify import MAX_PAYLOAD, PgChannel, supports_notify

log = logging.getLogger(__name__)

ALL = "*"
CHANNEL = "labfleet_events"
_SEND_BATCH = 200


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, **self.data}


LAGGED = "lagged"


class Subscription:
    """Events on some topics, as an async iterator; leave with ``async with`` or ``close()``."""

    def __init__(self, bus: EventBus, topics: frozenset[str], max_queue: int) -> None:
        self.topics = topics
        self.lagged = False
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(max_queue + 1)
        self._max = max_queue

    def _offer(self, event: Event) -> None:
        if self.lagged:
            return
        if self._queue.qsize() >= self._max:
            self.lagged = True
            self._queue.put_nowait(Event(event.topic, {"type": LAGGED}))
            return
        self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds or once closed."""
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Publish and subscribe by topic; ``connect`` bridges processes sharing one PostgreSQL."""

    def __init__(self, *, max_queue: int = 10_000) -> None:
        self._max_queue = max_queue
        self._by_topic: dict[str, set[Subscription]] = {}
        self._channel: PgChannel | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._sender: asyncio.Task[None] | None = None

    # -- subscribing

    def subscribe(self, topics: Iterable[str]) -> Subscription:
        wanted = frozenset(topics)
        sub = Subscription(self, wanted, self._max_queue)
        for topic in wanted:
            self._by_topic.setdefault(topic, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        for topic in sub.topics:
            subs = self._by_topic.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_topic[topic]

    @contextlib.asynccontextmanager
    async def listening(self, topics: Iterable[str]) -> AsyncIterator[Subscription]:
        sub = self.subscribe(topics)
        try:
            yield sub
        finally:
            sub.close()

    # -- publishing

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Deliver to this process's subscribers now and, when bridged, to the other processes."""
        event = Event(topic, data)
        self._deliver(event)
        if self._outbox is not None:
            for payload in _payloads(event):
                self._outbox.put_nowait(payload)

    def _deliver(self, event: Event) -> None:
        for sub in (*self._by_topic.get(event.topic, ()), *self._by_topic.get(ALL, ())):
            sub._offer(event)

    # -- across processes

    async def connect(self, database_url: str) -> None:
        """Bridge to the other processes on this database (PostgreSQL only; else a no-op)."""
        if not supports_notify(database_url) or self._channel is not None:
            return
        channel = PgChannel(database_url, CHANNEL, self._heard)
        await channel.open()
        self._channel = channel
        self._outbox = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_forever(), name="events-notify")

    def _heard(self, payload: str) -> None:
        message = json.loads(payload)
        self._deliver(Event(message["topic"], message["data"]))

    async def _send_forever(self) -> None:
        assert self._outbox is not None
        assert self._channel is not None
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < _SEND_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                await self._channel.send(batch)
            except Exception as exc:  # the database restarted: events are best effort
                log.warning("could not forward %d events to other processes: %s", len(batch), exc)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        channel, self._channel = self._channel, None
        self._outbox = None
        if channel is not None:
            await channel.close()
        for subs in list(self._by_topic.values()):
            for sub in list(subs):
                sub.close()


def _payloads(event: Event) -> list[str]:
    """The event as NOTIFY payloads, a long log event split at character boundaries."""
    payload = json.dumps({"topic": event.topic, "data": event.data}, separators=(",", ":"))
    if len(payload.encode()) <= MAX_PAYLOAD:
        return [payload]
    text = event.data.get("data")
    offset = event.data.get("offset")
    if event.data.get("type") != "log" or not isinstance(text, str) or not isinstance(offset, int):
        log.warning("event on %s too large to forward (%d bytes); dropped", event.topic, len(payload))
        return []
    pieces: list[str] = []
    # ASCII JSON spends at most 12 bytes on one character (a surrogate pair); room for the rest.
    budget = (MAX_PAYLOAD - 512) // 12
    start = 0
    while start < len(text):
        piece = text[start : start + budget]
        data = {**event.data, "offset": offset, "data": piece}
        pieces.append(json.dumps({"topic": event.topic, "data": data}, separators=(",", ":")))
        offset += len(piece.encode())
        start += budget
    return pieces
