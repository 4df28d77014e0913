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
    seconds: float | Callable[[], float],
    what: str,
    step: Callable[[], Awaitable[object]],
    *,
    first: float = 0.0,
) -> None:
    """Call ``step`` after ``first`` seconds, then every ``seconds`` (asked again after each
    step when it is a function: settings change while it runs), until cancelled."""
    await asyncio.sleep(first)
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; trying again in %g s", what, _seconds(seconds))
        await asyncio.sleep(_seconds(seconds))


def _seconds(seconds: float | Callable[[], float]) -> float:
    return seconds() if callable(seconds) else seconds
