"""``/notification-channels`` (admins set them up) and ``/notification-deliveries`` (what was
sent, every try) (R16.5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from labfleet.api.deps import Admin, Operator, SecretsDep, SessionDep
from labfleet.api.problems import responses
from labfleet.db.models import NotificationChannel
from labfleet.schemas.common import Page
from labfleet.schemas.notifications import (
    ChannelIn,
    ChannelOut,
    ChannelUpdate,
    DeliveryDetail,
    DeliveryOut,
    DeliveryState,
)
from labfleet.schemas.query import MAX_PAGE, ListQuery
from labfleet.services.notifications import channels, log

channels_router = APIRouter(
    prefix="/notification-channels", tags=["notifications"], responses=responses(401, 403, 422)
)
deliveries_router = APIRouter(
    prefix="/notification-deliveries", tags=["notifications"], responses=responses(401, 403, 422)
)
Ident = Annotated[int, Path(alias="id")]


def _out(channel: NotificationChannel) -> ChannelOut:
    return ChannelOut(
        id=channel.id,
        name=channel.name,
        transport=channel.transport,
        target=channels.view(channel),
        min_severity=channel.min_severity,
        resource_kinds=channel.resource_kinds,
        events=channel.events,
        enabled=channel.enabled,
        failing=channel.failing_since is not None,
        failing_since=channel.failing_since,
        last_error=channel.last_error,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


@channels_router.get("", response_model=Page[ChannelOut], summary="List notification channels")
async def list_channels(session: SessionDep, _: Operator) -> Page[ChannelOut]:
    rows = await channels.list_all(session)
    return Page(count=len(rows), items=[_out(c) for c in rows])


@channels_router.post(
    "",
    response_model=ChannelOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a notification channel; an SMTP server is tried first",
    responses=responses(409),
)
async def create_channel(
    session: SessionDep, actor: Admin, secrets: SecretsDep, data: ChannelIn
) -> ChannelOut:
    channel = await channels.create(session, actor, secrets, data)
    await session.commit()
    return _out(channel)


@channels_router.get(
    "/{id}", response_model=ChannelOut, summary="Show a notification channel", responses=responses(404)
)
async def get_channel(session: SessionDep, _: Operator, ident: Ident) -> ChannelOut:
    return _out(await channels.get(session, ident))


@channels_router.patch(
    "/{id}", response_model=ChannelOut, summary="Change a notification channel", responses=responses(404)
)
async def update_channel(
    session: SessionDep, actor: Admin, secrets: SecretsDep, ident: Ident, data: ChannelUpdate
) -> ChannelOut:
    channel = await channels.update(session, actor, secrets, ident, data)
    await session.commit()
    await session.refresh(channel)
    return _out(channel)


@channels_router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a notification channel and its deliveries",
    responses=responses(404),
)
async def delete_channel(session: SessionDep, actor: Admin, ident: Ident) -> Response:
    await channels.delete(session, actor, ident)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@deliveries_router.get(
    "", response_model=Page[DeliveryOut], summary="List notification deliveries, newest first"
)
async def list_deliveries(
    session: SessionDep,
    _: Operator,
    channel_id: Annotated[int | None, Query()] = None,
    event_id: Annotated[int | None, Query()] = None,
    state: Annotated[DeliveryState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[DeliveryOut]:
    fields = {"channel_id": channel_id, "event_id": event_id, "state": state}
    total, items = await log.search(session, ListQuery(limit=limit, offset=offset, fields=fields))
    return Page(count=total, items=items)


@deliveries_router.get(
    "/{id}",
    response_model=DeliveryDetail,
    summary="Show a delivery with every attempt",
    responses=responses(404),
)
async def get_delivery(session: SessionDep, _: Operator, ident: Ident) -> DeliveryDetail:
    return await log.get(session, ident)
