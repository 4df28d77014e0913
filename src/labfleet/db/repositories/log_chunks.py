"""Reading a log stored as chunks by byte offset (builds' and pipelines' alike)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

_PAGE = 64


async def read(
    session: AsyncSession, *, owner: Any, offset_column: Any, data_column: Any, offset: int, limit: int
) -> bytes:
    """Up to ``limit`` bytes from ``offset`` (which may fall inside a chunk), of the chunks whose
    ``owner`` condition holds (e.g. ``BuildLogChunk.build_job_id == 4``)."""
    first = await session.scalar(select(func.max(offset_column)).where(owner, offset_column <= offset))
    start = first if first is not None else 0
    out = bytearray()
    while len(out) < limit:
        # Chunks a page at a time: a long log is never loaded whole for a short read.
        rows = (
            await session.execute(
                select(offset_column, data_column)
                .where(owner, offset_column >= start)
                .order_by(offset_column)
                .limit(_PAGE)
            )
        ).all()
        for chunk_offset, data in rows:
            if chunk_offset + len(data) > offset:
                out += data[max(offset - chunk_offset, 0) :]
            start = chunk_offset + len(data)
            if len(out) >= limit:
                break
        if len(rows) < _PAGE:
            break
    return bytes(out[:limit])
