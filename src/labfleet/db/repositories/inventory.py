"""Queries shared by every inventory collection: pages, filters, uniqueness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.interfaces import ORMOption

M = TypeVar("M")


def _filtered(
    model: Any,
    *,
    label_model: Any,
    label_fk: InstrumentedAttribute[int],
    statuses: Sequence[str],
    labels: Sequence[tuple[str, str | None]],
    fields: dict[str, Any],
) -> Select[Any]:
    stmt = select(model)
    if statuses:
        stmt = stmt.where(model.status.in_(statuses))
    for name, value in fields.items():
        column = getattr(model, name)
        stmt = stmt.where(column.in_(value) if isinstance(value, (list, tuple)) else column == value)
    for key, value in labels:
        match: ColumnElement[bool] = label_model.key == key
        if value is not None:
            match = match & (label_model.value == value)
        stmt = stmt.where(model.id.in_(select(label_fk).where(match)))
    return stmt


async def page(
    session: AsyncSession,
    model: type[M],
    *,
    label_model: Any,
    label_fk: InstrumentedAttribute[int],
    statuses: Sequence[str] = (),
    labels: Sequence[tuple[str, str | None]] = (),
    fields: dict[str, Any] | None = None,
    sort: tuple[str, bool] | None = None,
    limit: int,
    offset: int,
    options: Sequence[ORMOption] = (),
) -> tuple[int, list[M]]:
    """One page of ``model`` rows that match every filter, and how many match in all.

    ``labels`` are (key, value) pairs; a ``None`` value matches any value of the key.
    """
    stmt = _filtered(
        model,
        label_model=label_model,
        label_fk=label_fk,
        statuses=statuses,
        labels=labels,
        fields=fields or {},
    )
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    order: list[Any] = []
    if sort is not None:
        column = getattr(model, sort[0])
        order.append(column.desc() if sort[1] else column.asc())
    order.append(model.id.asc())  # type: ignore[attr-defined]
    rows = await session.scalars(stmt.order_by(*order).limit(limit).offset(offset).options(*options))
    return int(total or 0), list(rows.unique())


async def get(
    session: AsyncSession, model: type[M], ident: int, options: Sequence[ORMOption] = ()
) -> M | None:
    return await session.get(model, ident, options=options, populate_existing=bool(options))


async def taken(
    session: AsyncSession, column: InstrumentedAttribute[Any], value: Any, *, exclude_id: int | None
) -> bool:
    """Whether another row already has ``value`` in the unique ``column``."""
    cond = column == value
    if exclude_id is not None:
        cond = cond & (column.class_.id != exclude_id)
    return bool(await session.scalar(select(exists().where(cond))))


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)
