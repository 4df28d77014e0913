"""Helpers shared by test packages."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry


def free_port() -> int:
    """A loopback TCP port that nothing listens on now (for a server to come, or to find closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def example(session: AsyncSession) -> AsyncIterator[None]:
    """One Hypothesis example in a SAVEPOINT that is rolled back, so examples don't see each other."""
    savepoint = await session.begin_nested()
    try:
        yield
    finally:
        await savepoint.rollback()


async def pool_size(session: AsyncSession, model: type[Any]) -> tuple[int, int]:
    """How many ``model`` rows and audit entries there are."""
    members = await session.scalar(select(func.count()).select_from(model))
    audits = await session.scalar(select(func.count()).select_from(AuditEntry))
    return int(members or 0), int(audits or 0)
