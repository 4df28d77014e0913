"""PostgreSQL LISTEN/NOTIFY on one channel: how events cross ``labfleet serve`` processes.

One connection of its own (asyncpg, outside the engine's pool) listens and sends. A
process hears its own notifications too; they are told apart by the sending backend's
pid and dropped, since the process already delivered them itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# PostgreSQL refuses payloads of 8000 bytes or more.
MAX_PAYLOAD = 7900


def supports_notify(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PgChannel:
    """Sends and receives notifications on ``channel``; ``on_message`` gets each foreign payload."""

    def __init__(self, url: str, channel: str, on_message: Callable[[str], None]) -> None:
        self._dsn = _dsn(url)
        self._channel = channel
        self._on_message = on_message
        self._conn: Any = None
        self._pid: int | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        self._pid = self._conn.get_server_pid()
        await self._conn.add_listener(self._channel, self._heard)

    def _heard(self, _conn: Any, pid: int, _channel: str, payload: str) -> None:
        if pid == self._pid:
            return
        try:
            self._on_message(payload)
        except Exception:  # a bad payload must not stop the listener
            log.exception("dropping a notification on %s", self._channel)

    async def send(self, payloads: Sequence[str]) -> None:
        """One round trip for all of ``payloads``, delivered in order on commit (autocommit here)."""
        if not payloads or self._conn is None:
            return
        async with self._lock:
            await self._conn.execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
                self._channel,
                list(payloads),
            )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(self._channel, self._heard)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)
