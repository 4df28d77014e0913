"""Recording every change: who, what, when, before and after, secrets redacted."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry
from labfleet.db.repositories import audit as repo
from labfleet.schemas.auth import Actor

REDACTED = "***"
_SECRET_WORDS = ("password", "private_key", "secret", "token")


def redact(value: Any) -> Any:
    """A copy of ``value`` with anything that looks like a secret replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if any(w in k.lower() for w in _SECRET_WORDS) and v is not None and not isinstance(v, bool)
                else redact(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


async def record(
    *,
    session: AsyncSession,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: int | None,
    display: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor=actor.name,
            token_id=actor.token_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_display=display[:255],
            before=redact(before),
            after=redact(after),
        )
    )


async def entries(
    *, session: AsyncSession, object_type: str | None, object_id: int | None, limit: int, offset: int
) -> tuple[int, list[AuditEntry]]:
    return await repo.page(session, object_type=object_type, object_id=object_id, limit=limit, offset=offset)
