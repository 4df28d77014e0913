"""A round of checks: devices asked at most ``concurrency`` at a time, outside any transaction;
the answers recorded as they come, those waiting together in one transaction, each in a
SAVEPOINT of its own, so that one resource's trouble never holds up or undoes another's,
and a thousand resources do not queue one commit each for SQLite's write lock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

RECORD_BATCH = 100
"""Answers recorded in one transaction at most."""

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


async def probe_then_record(
    targets: list[T],
    *,
    sessions: async_sessionmaker[AsyncSession],
    probe: Callable[[T], Awaitable[P]],
    record: Callable[[AsyncSession, P], Awaitable[R | None]],
    after: Callable[[R], Awaitable[None]],
    name: Callable[[T], str],
    concurrency: int,
    batch: int = RECORD_BATCH,
) -> list[R]:
    """What the round changed, each result also given to ``after`` once committed."""
    limit = asyncio.Semaphore(concurrency)
    found: asyncio.Queue[tuple[T, P] | None] = asyncio.Queue()

    async def ask(target: T) -> None:
        try:
            async with limit:
                found.put_nowait((target, await probe(target)))
        except Exception:
            log.exception("health check of %s failed", name(target))
            found.put_nowait(None)

    asking = [asyncio.create_task(ask(t)) for t in targets]
    results: list[R] = []
    try:
        remaining = len(targets)
        while remaining:
            waiting = [await found.get()]
            while len(waiting) < batch and not found.empty():
                waiting.append(found.get_nowait())
            remaining -= len(waiting)
            recorded = await _record(sessions, [w for w in waiting if w is not None], record, name)
            for result in recorded:
                await after(result)
            results += recorded
    finally:
        for task in asking:
            task.cancel()
        await asyncio.gather(*asking, return_exceptions=True)
    return results


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    answers: list[tuple[T, P]],
    record: Callable[[AsyncSession, P], Awaitable[R | None]],
    name: Callable[[T], str],
) -> list[R]:
    if not answers:
        return []
    recorded: list[R] = []
    async with sessions() as session:
        for target, answer in answers:
            try:
                async with session.begin_nested():
                    result = await record(session, answer)
            except Exception:
                log.exception("recording the health check of %s failed", name(target))
                continue
            if result is not None:
                recorded.append(result)
        await session.commit()
    return recorded
