"""``/api/v1/events``: live events over a WebSocket, by topic; a build's log resumable by offset.

Connect with the topics wanted (``?topic=build-job:12&topic=alerts``, ``*`` for all) and
an API token (``Authorization: Bearer`` or ``?token=``, since browsers cannot set
headers on a WebSocket). Each message is one JSON event: ``{"topic": ..., "type": ...}``.
With ``log_offset=N`` and one ``build-job:<id>`` topic, the job's stored log is replayed
from byte N and then followed live (``type: log`` messages with their ``offset``), ending
with ``type: end`` once the job has finished; a client that reconnects passes the offset
it has reached and misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status

from labfleet.errors import LabfleetError
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.services.builds import logs as build_logs
from labfleet.services.builds import service as builds
from labfleet.services.core import tokens
from labfleet.services.core.events import ALL, EventBus
from labfleet.services.pipelines import service as pipelines

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])
_TOPIC = re.compile(r"^(\*|[a-z][a-z0-9-]*(:[0-9]+)?)$")
_JOB_TOPIC = re.compile(r"^(build-job|pipeline):([0-9]+)$")
_MAX_TOPICS = 64


async def _actor(ws: WebSocket, token: str | None) -> Actor | None:
    header = ws.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        return None
    async with ws.app.state.sessions() as session:
        try:
            actor = await tokens.authenticate(session=session, token=token)
        except LabfleetError:
            return None
        await session.commit()
    return actor if actor.can(Role.viewer) else None


@router.websocket("/events", name="events")
async def events(
    ws: WebSocket,
    topic: Annotated[list[str] | None, Query()] = None,
    token: Annotated[str | None, Query()] = None,
    log_offset: Annotated[int | None, Query(ge=0)] = None,
) -> None:
    if await _actor(ws, token) is None:
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason="an API token with a role is required")
        return
    topics = topic or [ALL]
    bad = [t for t in topics if not _TOPIC.match(t)]
    followed = [(m.group(1), int(m.group(2))) for t in topics if (m := _JOB_TOPIC.match(t))]
    if bad or len(topics) > _MAX_TOPICS or (log_offset is not None and len(followed) != 1):
        reason = (
            f"bad topic {bad[0]!r}"
            if bad
            else "log_offset needs exactly one build-job:<id> or pipeline:<id> topic"
            if log_offset is not None
            else "too many topics"
        )
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason=reason)
        return
    await ws.accept()
    bus: EventBus = ws.app.state.bus
    outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=1024)
    following = followed if log_offset is not None else []
    await _snapshot(ws, topics, outbox)
    tasks = [asyncio.create_task(_forward(bus, topics, outbox, followed=following))]
    if log_offset is not None:
        tasks.append(asyncio.create_task(_follow(ws, *followed[0], log_offset, outbox)))
    tasks.append(asyncio.create_task(_drain_client(ws)))
    try:
        while True:
            getter = asyncio.ensure_future(outbox.get())
            done, _ = await asyncio.wait({getter, tasks[-1]}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break  # the client went away
            message = getter.result()
            if message is None:
                break
            await ws.send_text(json.dumps(message, separators=(",", ":")))
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ws.close()


_KINDS = {"build-job": build_logs.BUILD_LOGS, "pipeline": pipelines.LOGS}


async def _forward(
    bus: EventBus,
    topics: list[str],
    outbox: asyncio.Queue[dict[str, Any] | None],
    *,
    followed: list[tuple[str, int]],
) -> None:
    # A followed job's log and status come through _follow, in order with each other.
    skipped = {_KINDS[k].topic(j) for k, j in followed}
    async with bus.listening(topics) as sub:
        async for event in sub:
            if event.topic in skipped and event.data.get("type") in ("log", "status"):
                continue
            await outbox.put(event.as_dict())
            if event.data.get("type") == "lagged":
                await outbox.put(None)
                return


async def _snapshot(ws: WebSocket, topics: list[str], outbox: asyncio.Queue[dict[str, Any] | None]) -> None:
    """The current status of each job named, so a client never waits for a change it missed."""
    for t in topics:
        found = _JOB_TOPIC.match(t)
        if found is None:
            continue
        ident = int(found.group(2))
        async with ws.app.state.sessions() as session:
            try:
                if found.group(1) == "pipeline":
                    p = await pipelines.get(session=session, ident=ident)
                    rows = await pipelines.stages(session, ident)
                    event = pipelines.status_event(p, rows, await pipelines.latest_results(session, rows))
                else:
                    event = builds.status_event(await builds.get(session=session, ident=ident))
            except LabfleetError:
                continue
        await outbox.put({"topic": t, **event})


async def _follow(
    ws: WebSocket, what: str, job_id: int, offset: int, outbox: asyncio.Queue[dict[str, Any] | None]
) -> None:
    kind = _KINDS[what]
    topic, key = kind.topic(job_id), kind.key
    try:
        async for item in build_logs.follow(
            sessions=ws.app.state.sessions, bus=ws.app.state.bus, job_id=job_id, offset=offset, kind=kind
        ):
            if isinstance(item, build_logs.Piece):
                text = item.data.decode("utf-8", "replace")
                message = {"type": "log", key: job_id, "offset": item.offset, "length": len(item.data)}
                await outbox.put({"topic": topic, **message, "data": text})
            elif isinstance(item, build_logs.Status):
                await outbox.put({"topic": topic, **item.data})
            else:
                await outbox.put(
                    {"topic": topic, "type": "end", key: job_id, "status": item.status, "size": item.size}
                )
                await outbox.put(None)
                return
    except LabfleetError as exc:
        await outbox.put({"topic": topic, "type": "error", key: job_id, "detail": exc.message})
        await outbox.put(None)
        return
    except Exception:
        log.exception("following the log of %s %s failed", kind.what, job_id)
        await outbox.put(
            {"topic": topic, "type": "error", key: job_id, "detail": "internal error; reconnect"}
        )
        await outbox.put(None)
        return
    # The follower stopped early (it lagged): the client reconnects from the offset it has.
    await outbox.put({"topic": topic, "type": "lagged", key: job_id})
    await outbox.put(None)


async def _drain_client(ws: WebSocket) -> None:
    """Reads (and ignores) what the client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.receive_text()
