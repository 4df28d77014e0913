"""API tokens: issue, authenticate, list, revoke. Only a SHA-256 of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import ApiToken
from labfleet.db.repositories import tokens as repo
from labfleet.errors import Conflict, NotFound, Unauthenticated
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.services.core import audit

PREFIX = "lf_"
# Writing last_used_at on every request would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    *,
    session: AsyncSession,
    actor: Actor,
    name: str,
    role: Role,
    team: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret, which is not kept and cannot be shown again."""
    if await repo.by_name(session, name) is not None:
        raise Conflict(f"a token named {name!r} already exists", field="name")
    plaintext = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        role=role.name,
        team=team,
        token_hash=_hash(plaintext),
        prefix=plaintext[:10],
        created_by=actor.name,
        expires_at=expires_at,
    )
    session.add(token)
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type="token",
        object_id=token.id,
        display=name,
        after={"name": name, "role": role.name, "team": team},
    )
    return token, plaintext


async def authenticate(*, session: AsyncSession, token: str) -> Actor:
    """The actor a bearer token stands for; ``Unauthenticated`` if it stands for none."""
    row = await repo.by_hash(session, _hash(token)) if token.startswith(PREFIX) else None
    now = utcnow()
    if row is None:
        raise Unauthenticated("the token is not valid")
    if row.revoked_at is not None:
        raise Unauthenticated("the token has been revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated("the token has expired")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Actor(name=row.name, role=Role.parse(row.role), team=row.team, token_id=row.id)


async def list_all(*, session: AsyncSession) -> list[ApiToken]:
    return await repo.all_tokens(session)


async def revoke(*, session: AsyncSession, actor: Actor, name_or_id: str | int) -> ApiToken:
    row = (
        await session.get(ApiToken, name_or_id)
        if isinstance(name_or_id, int)
        else await repo.by_name(session, name_or_id)
    )
    if row is None:
        raise NotFound(f"no token {name_or_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await audit.record(
            session=session,
            actor=actor,
            action="revoke",
            object_type="token",
            object_id=row.id,
            display=row.name,
        )
    return row


async def bootstrap_admin(*, session: AsyncSession, actor: Actor) -> str | None:
    """On a database with no token at all, create an admin token and return its secret."""
    if await repo.any_exist(session):
        return None
    _, plaintext = await create(session=session, actor=actor, name="admin", role=Role.admin)
    return plaintext
