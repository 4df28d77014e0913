"""The one shape of a history list: rows whose columns equal the given values, newest first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

M = TypeVar("M")


async def newest_first(
    session: AsyncSession,
    model: type[M],
    *,
    fields: Mapping[str, Any],
    where: Iterable[ColumnElement[bool]] = (),
    limit: int,
    offset: int,
) -> tuple[int, list[M]]:
    """How many rows match and one page of them, by id descending; a field whose value is None
    does not filter."""
    stmt = select(model).where(
        *where, *(getattr(model, name) == value for name, value in fields.items() if value is not None)
    )
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    # Every model has an ``id``; the type variable cannot say so.
    ident: Any = getattr(model, "id")  # noqa: B009
    rows = await session.scalars(stmt.order_by(ident.desc()).limit(limit).offset(offset))
    return int(total or 0), list(rows)
