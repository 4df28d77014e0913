"""Running a coroutine every so often, logging (not dying of) its failures; the time now."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """Aware UTC, as the rows store it (the engine does not reach ``db/``, where the other one is)."""
    return datetime.now(UTC)


async def every(
    seconds: float, what: str, step: Callable[[], Awaitable[object]], *, first: float = 0.0
) -> None:
    """Call ``step`` after ``first`` seconds, then every ``seconds``, until cancelled."""
    await asyncio.sleep(first)
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; trying again in %g s", what, seconds)
        await asyncio.sleep(seconds)
