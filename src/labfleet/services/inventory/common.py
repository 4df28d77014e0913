"""What every inventory collection does alike: fetch, list, uniqueness, labels, audit.

The capability modules (``build_servers``, ``hosts``, ``boards``) describe their
collection once as a ``Collection`` and keep only what is their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm.interfaces import ORMOption

from labfleet.db.repositories import inventory as repo
from labfleet.errors import Conflict, DeviceError, Invalid, NotFound
from labfleet.schemas.auth import Actor
from labfleet.schemas.query import ListQuery
from labfleet.services.core import audit

M = TypeVar("M")
T = TypeVar("T")


@dataclass(frozen=True)
class Collection(Generic[M]):
    object_type: str
    noun: str
    model: type[M]
    label_model: type[Any]
    label_fk: InstrumentedAttribute[int]
    unique: tuple[str, ...]
    sortable: frozenset[str]
    filterable: frozenset[str]
    loads: Sequence[ORMOption]
    refreshed: Sequence[str]
    snapshot: Callable[[M], dict[str, Any]]
    display: Callable[[M], str]


async def fetch(coll: Collection[M], *, session: AsyncSession, ident: int) -> M:
    obj = await repo.get(session, coll.model, ident, coll.loads)
    if obj is None:
        raise NotFound(f"no {coll.noun} with id {ident}", field="id")
    return obj


async def listing(coll: Collection[M], *, session: AsyncSession, query: ListQuery) -> tuple[int, list[M]]:
    sort = query.sort_key(coll.sortable)
    return await repo.page(
        session,
        coll.model,
        label_model=coll.label_model,
        label_fk=coll.label_fk,
        statuses=query.statuses,
        labels=[(f.key, f.value) for f in query.labels],
        fields=query.fields,
        sort=sort,
        limit=query.limit,
        offset=query.offset,
        options=coll.loads,
    )


async def ensure_unique(
    coll: Collection[M], *, session: AsyncSession, values: dict[str, Any], exclude_id: int | None = None
) -> None:
    """``Conflict`` naming the first unique field whose value another member has."""
    for name in coll.unique:
        value = values.get(name)
        if value is not None and await repo.taken(
            session, getattr(coll.model, name), value, exclude_id=exclude_id
        ):
            raise Conflict(f"a {coll.noun} with {name} {value!r} already exists", field=name)


async def validated(coll: Collection[Any], check: Awaitable[T], *, field: str) -> T:
    """The facts a registration check found; a device that fails it makes the input invalid."""
    try:
        return await check
    except DeviceError as exc:
        raise Invalid(f"cannot register this {coll.noun}: {exc.message}", field=exc.field or field) from exc


def sync_labels(obj: Any, coll: Collection[Any], wanted: dict[str, str]) -> None:
    """Make ``obj.labels`` equal ``wanted``, changing rows in place (keys are primary keys)."""
    current = {label.key: label for label in obj.labels}
    for key, label in current.items():
        if key not in wanted:
            obj.labels.remove(label)
        elif label.value != wanted[key]:
            label.value = wanted[key]
    for key, value in wanted.items():
        if key not in current:
            obj.labels.append(coll.label_model(key=key, value=value))


async def _flush(coll: Collection[Any], session: AsyncSession, *, deleting: bool = False) -> None:
    # Losing a race on a unique value to another request ends here; the caller's
    # transaction is then rolled back whole, as every failed request's is.
    try:
        await session.flush()
    except IntegrityError as exc:
        if deleting:
            raise Conflict(f"this {coll.noun} is still in use: reservations or history refer to it") from exc
        text = str(exc.orig).lower()
        field = next((name for name in coll.unique if name in text), None)
        raise Conflict(f"this {coll.noun} conflicts with an existing one", field=field) from exc


async def save_new(coll: Collection[M], *, session: AsyncSession, actor: Actor, obj: M) -> M:
    session.add(obj)
    await _flush(coll, session)
    ident: int = obj.id  # type: ignore[attr-defined]
    # What the new row got from the database rather than from us: its status row.
    await session.refresh(obj, attribute_names=coll.refreshed)
    saved = obj
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type=coll.object_type,
        object_id=ident,
        display=coll.display(saved),
        after=coll.snapshot(saved),
    )
    return saved


async def save_changes(
    coll: Collection[M],
    *,
    session: AsyncSession,
    actor: Actor,
    obj: M,
    before: dict[str, Any],
    replaced: Sequence[str] = (),
) -> M:
    """Flush and audit the change; ``replaced``: the credentials (``ssh``, ``power``, ``flash``)
    the update sent, which replace the stored ones."""
    await _flush(coll, session)
    ident: int = obj.id  # type: ignore[attr-defined]
    await session.refresh(obj, attribute_names=coll.refreshed)
    saved = obj
    after = coll.snapshot(saved)
    if replaced:
        # A snapshot only says whether credentials are set, so replacing them would look like
        # no change at all: they are named here, never their values.
        after["credentials_replaced"] = list(replaced)
    if after != before:
        await audit.record(
            session=session,
            actor=actor,
            action="update",
            object_type=coll.object_type,
            object_id=ident,
            display=coll.display(saved),
            before=before,
            after=after,
        )
    return saved


async def delete(coll: Collection[M], *, session: AsyncSession, actor: Actor, ident: int) -> None:
    obj = await fetch(coll, session=session, ident=ident)
    before = coll.snapshot(obj)
    await session.delete(obj)
    await _flush(coll, session, deleting=True)
    await audit.record(
        session=session,
        actor=actor,
        action="delete",
        object_type=coll.object_type,
        object_id=ident,
        display=coll.display(obj),
        before=before,
    )


def assign(obj: Any, sent: dict[str, Any], names: Sequence[str]) -> None:
    """Copy the plain fields an update sent (and did not send as null) onto ``obj``."""
    for name in names:
        if sent.get(name) is not None:
            setattr(obj, name, sent[name])


def changed_fields(data: Any) -> dict[str, Any]:
    """The fields an update actually sent (``None`` included only if sent explicitly)."""
    return {name: getattr(data, name) for name in data.model_fields_set}
