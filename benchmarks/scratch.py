"""Scratch databases for benchmarks: PostgreSQL ones created on the server of an admin URL and dropped
after, SQLite files in a scratch directory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from labfleet.db import migrate


async def _admin(admin_url: str, statement: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def scratch_pg(admin_url: str) -> Iterator[str]:
    """The URL of an empty database of its own on ``admin_url``'s server (an async driver URL)."""
    name = f"labfleet_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def migrated_sqlite(scratch: Path, name: str) -> Iterator[str]:
    """The URL of a new, migrated SQLite file in ``scratch``, its name starting with ``name``."""
    url = f"sqlite+aiosqlite:///{scratch / f'{name}-{uuid.uuid4().hex}.db'}"
    migrate.upgrade(url)
    yield url


@contextmanager
def migrated_pg(admin_url: str) -> Iterator[str]:
    """The URL of a scratch PostgreSQL database on ``admin_url``'s server, migrated; dropped after."""
    with scratch_pg(admin_url) as url:
        migrate.upgrade(url)
        yield url
