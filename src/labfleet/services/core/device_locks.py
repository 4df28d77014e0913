"""One physical device, one operation at a time: a lock per device, in this process and across processes.

::

    async with device_lock(session=session, kind="board", ident=board.id, what="power cycle #12 by ana"):
        ...  # the device is ours; a second operation gets Conflict naming this one

The lock never waits: an operation on a device that is busy is refused at once with a
``Conflict`` that names what runs (a power cycle, a flash), so that the caller can say
so or try later, and nothing piles up behind a long operation.

- In this process: a table of holders per event loop, keyed by (kind, id), checked and
  set with no ``await`` in between.
- Across processes, on PostgreSQL: a session-level advisory lock on a pooled connection
  of its own, held for the whole operation (``db/repositories/locks.py``). It goes away
  with its connection, so a process that dies frees its devices at once.
- On SQLite there is no advisory lock; one process is the usual deployment, and the
  operations that need it add a guard of their own in the database (power actions: a
  unique index on the board's running action).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from labfleet.db.repositories import locks as repo
from labfleet.errors import Conflict

log = logging.getLogger(__name__)

_holders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], str]] = (
    weakref.WeakKeyDictionary()
)


def _table() -> dict[tuple[str, int], str]:
    return _holders.setdefault(asyncio.get_running_loop(), {})


def holder_here(kind: str, ident: int) -> str | None:
    """What holds the device in this process, if anything."""
    return _table().get((kind, ident))


def _busy(kind: str, ident: int, what: str | None) -> Conflict:
    doing = what or "an operation in another labfleet process"
    return Conflict(f"{kind} {ident} is busy: {doing} is running; try again when it has finished")


@asynccontextmanager
async def device_lock(*, session: AsyncSession, kind: str, ident: int, what: str) -> AsyncIterator[None]:
    """Hold the device for the block; ``Conflict`` naming the holder if it is busy.

    ``what`` says what the holder does ("power cycle #12 of board 3 by ana"); others are
    told it when they find the device busy. ``session`` only tells the backend and the
    engine to take the lock's own connection from: no transaction of it is used.
    """
    table = _table()
    key = (kind, ident)
    current = table.get(key)
    if current is not None:
        raise _busy(kind, ident, current)
    table[key] = what
    try:
        if repo.uses_advisory_locks(session):
            async with _advisory(session, kind, ident, what):
                yield
        else:
            yield
    finally:
        if table.get(key) == what:
            del table[key]


@asynccontextmanager
async def _advisory(session: AsyncSession, kind: str, ident: int, what: str) -> AsyncIterator[None]:
    keys = repo.lock_keys(kind, ident)
    conn = await repo.open_lock_connection(repo.engine_of(session))
    held = False
    try:
        held = await repo.try_lock(conn, keys, f"labfleet: {what}")
        if not held:
            other = await repo.holder(conn, keys)
            await repo.reset_name(conn)
            raise _busy(kind, ident, other.removeprefix("labfleet: ") if other else None)
        yield
    except BaseException:
        if held:
            await _let_go(conn, keys)
        else:
            await conn.close()
        raise
    else:
        await _let_go(conn, keys)


async def _let_go(conn: AsyncConnection, keys: tuple[int, int]) -> None:
    # Shielded: a cancelled operation must still give the device back. A connection that
    # cannot unlock is thrown away, which ends its session and so its lock.
    async def release() -> None:
        try:
            await repo.unlock(conn, keys)
        except Exception:
            log.warning("could not release device lock %s; dropping its connection", keys, exc_info=True)
            with contextlib.suppress(Exception):
                await conn.invalidate()
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    await asyncio.shield(release())
