"""PostgreSQL advisory locks held on a connection of their own, for one device at a time.

A lock is session-level (``pg_try_advisory_lock``), on a connection taken from the pool
for as long as the operation runs and kept out of any transaction, so that the operation
holds no transaction open while it works on the device. If the process dies, PostgreSQL
ends its connection and the lock goes with it.

While it holds a lock, the connection's ``application_name`` says what it is doing, so a
process that finds the lock taken can name the operation that holds it, whichever
process runs it.
"""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

# PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes.
_NAME_BYTES = 63


def lock_keys(kind: str, ident: int) -> tuple[int, int]:
    """The two 32-bit keys of a device's lock: one per kind of device, and its id."""
    if not 0 <= ident < 2**31:
        raise ValueError(f"a device id for an advisory lock is a 32-bit positive number, not {ident}")
    return zlib.crc32(f"labfleet-device:{kind}".encode()) & 0x7FFFFFFF, ident


def engine_of(session: AsyncSession) -> AsyncEngine:
    """The engine behind a session, whether it is bound to an engine or to one connection."""
    bind = session.bind
    if isinstance(bind, AsyncConnection):
        return bind.engine
    if isinstance(bind, AsyncEngine):
        return bind
    raise TypeError(f"a session bound to {bind!r} has no engine to take a lock connection from")


def uses_advisory_locks(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _name(what: str) -> str:
    return what.encode()[:_NAME_BYTES].decode(errors="ignore")


async def open_lock_connection(engine: AsyncEngine) -> AsyncConnection:
    """A connection of the pool, in autocommit: a held lock keeps no transaction open."""
    conn = await engine.connect()
    try:
        return await conn.execution_options(isolation_level="AUTOCOMMIT")
    except BaseException:
        await conn.close()
        raise


async def try_lock(conn: AsyncConnection, keys: tuple[int, int], what: str) -> bool:
    """Take the lock without waiting, naming the connection after ``what``; False if it is taken."""
    await conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": _name(what)})
    taken = await conn.scalar(text("SELECT pg_try_advisory_lock(:k1, :k2)"), {"k1": keys[0], "k2": keys[1]})
    return bool(taken)


async def unlock(conn: AsyncConnection, keys: tuple[int, int]) -> None:
    """Let go of the lock and give the connection its ordinary name back."""
    await conn.scalar(text("SELECT pg_advisory_unlock(:k1, :k2)"), {"k1": keys[0], "k2": keys[1]})
    await conn.execute(text("RESET application_name"))


async def reset_name(conn: AsyncConnection) -> None:
    await conn.execute(text("RESET application_name"))


async def holder(conn: AsyncConnection, keys: tuple[int, int]) -> str | None:
    """What the connection holding the lock is doing (its application_name), if it holds it still."""
    row = (
        await conn.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.classid = CAST(:k1 AS oid) AND l.objid = CAST(:k2 AS oid) "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"k1": keys[0], "k2": keys[1]},
        )
    ).first()
    return None if row is None else str(row[0] or "") or None
