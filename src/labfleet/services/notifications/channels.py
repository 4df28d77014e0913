"""Notification channels: kept with their secrets sealed, checked before they are stored.

A channel that cannot work is refused when it is saved, with the field at fault: an SMTP
server that does not answer, refuses STARTTLS or the login (``target.email.host``,
``target.email.username``), an Apprise URL no service understands
(``target.apprise.urls.N``). The paths name the transport as the request's own
validation does (pydantic's tagged union).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import NotificationChannel
from labfleet.db.repositories import notifications as repo
from labfleet.errors import Conflict, Invalid, NotFound
from labfleet.outbound import DeliveryFailed, chat, email
from labfleet.schemas.auth import Actor
from labfleet.schemas.notifications import AppriseTarget, ChannelIn, ChannelUpdate, EmailTarget, Target
from labfleet.secretbox import SecretBox
from labfleet.services.core import audit
from labfleet.services.notifications.sending import Route, email_target

OBJECT_TYPE = "notification-channel"
_SECRET_FIELDS = {"email": ("password",), "webhook": ("secret",), "apprise": ("urls",)}


def split(target: Target) -> tuple[dict[str, Any], dict[str, Any]]:
    """What may be shown, and what is sealed."""
    data = target.model_dump(mode="json", exclude={"transport"}, exclude_none=True)
    hidden = _SECRET_FIELDS[target.transport]
    return {k: v for k, v in data.items() if k not in hidden}, {k: v for k, v in data.items() if k in hidden}


def view(channel: NotificationChannel) -> dict[str, Any]:
    """The target as the API shows it: no secret, only whether each is set."""
    shown: dict[str, Any] = dict(channel.config)
    sealed = shown.pop("_sealed", None) or []
    for name in _SECRET_FIELDS[channel.transport]:
        shown[f"has_{name}"] = name in sealed
    return shown


async def check(target: Target, *, timeout_s: float) -> None:
    """Refuse a channel that cannot work now; ``Invalid`` names the field and says why."""
    if isinstance(target, EmailTarget):
        config, secret = split(target)
        try:
            await email.check(email_target(config, secret, timeout_s))
        except DeliveryFailed as exc:
            field = "target.email.username" if "login" in exc.message else "target.email.host"
            raise Invalid(exc.message, field=field) from None
    elif isinstance(target, AppriseTarget):
        for i in chat.unknown_urls(tuple(target.urls)):
            reason = "no Apprise service understands this URL's scheme"
            raise Invalid(reason, field=f"target.apprise.urls.{i}")


def _store_target(channel: NotificationChannel, secrets: SecretBox, target: Target) -> None:
    config, secret = split(target)
    channel.transport = target.transport
    # Which secrets were given, so that the view can say so without opening the box.
    channel.config = {**config, "_sealed": sorted(secret)}
    channel.sealed_secret = secrets.seal(secret) if secret else None


def snapshot(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "name": channel.name,
        "transport": channel.transport,
        "target": view(channel),
        "min_severity": channel.min_severity,
        "resource_kinds": list(channel.resource_kinds),
        "events": list(channel.events),
        "enabled": channel.enabled,
    }


async def list_all(session: AsyncSession) -> list[NotificationChannel]:
    return await repo.channels(session)


async def get(session: AsyncSession, ident: int, *, for_update: bool = False) -> NotificationChannel:
    channel = await repo.channel(session, ident=ident, for_update=for_update)
    if channel is None:
        raise NotFound(f"notification channel {ident} does not exist")
    return channel


async def create(
    session: AsyncSession, actor: Actor, secrets: SecretBox, data: ChannelIn, *, timeout_s: float = 10.0
) -> NotificationChannel:
    if await repo.channel(session, name=data.name) is not None:
        raise Conflict(f"a notification channel named {data.name!r} exists", field="name")
    await check(data.target, timeout_s=timeout_s)
    channel = NotificationChannel(
        name=data.name,
        min_severity=data.min_severity.value,
        resource_kinds=[k.value for k in data.resource_kinds],
        events=[e.value for e in data.events],
        enabled=data.enabled,
    )
    _store_target(channel, secrets, data.target)
    try:
        async with session.begin_nested():
            session.add(channel)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a notification channel named {data.name!r} exists", field="name") from None
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type=OBJECT_TYPE,
        object_id=channel.id,
        display=channel.name,
        after=snapshot(channel),
    )
    return channel


async def update(
    session: AsyncSession,
    actor: Actor,
    secrets: SecretBox,
    ident: int,
    data: ChannelUpdate,
    *,
    timeout_s: float = 10.0,
) -> NotificationChannel:
    channel = await get(session, ident, for_update=True)
    if data.target is not None:
        await check(data.target, timeout_s=timeout_s)
    before = snapshot(channel)
    if data.target is not None:
        _store_target(channel, secrets, data.target)
    if data.min_severity is not None:
        channel.min_severity = data.min_severity.value
    if data.resource_kinds is not None:
        channel.resource_kinds = [k.value for k in data.resource_kinds]
    if data.events is not None:
        channel.events = [e.value for e in data.events]
    if data.enabled is not None:
        channel.enabled = data.enabled
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="update",
        object_type=OBJECT_TYPE,
        object_id=channel.id,
        display=channel.name,
        before=before,
        after=snapshot(channel),
    )
    return channel


async def delete(session: AsyncSession, actor: Actor, ident: int) -> None:
    """Gone with its deliveries; what was sent stays in the receivers' hands and the audit log."""
    channel = await get(session, ident, for_update=True)
    before = snapshot(channel)
    await session.delete(channel)
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="delete",
        object_type=OBJECT_TYPE,
        object_id=ident,
        display=before["name"],
        before=before,
    )


def route(channel: NotificationChannel, secrets: SecretBox) -> Route:
    config = {k: v for k, v in channel.config.items() if k != "_sealed"}
    secret = secrets.open(channel.sealed_secret) if channel.sealed_secret else {}
    return Route(
        channel_id=channel.id, name=channel.name, transport=channel.transport, config=config, secret=secret
    )
