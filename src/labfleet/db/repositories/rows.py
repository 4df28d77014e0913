"""How many rows a writing statement touched."""

from __future__ import annotations

from sqlalchemy import CursorResult


def affected(result: object) -> int:
    """The rows an UPDATE or DELETE matched (``session.execute`` types its result loosely)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)
