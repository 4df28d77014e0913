"""Queries on artifacts, their references, the retention policy, and the builds they come from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Artifact, ArtifactReference, BuildJob
from labfleet.db.models.builds import SUCCEEDED
from labfleet.db.repositories.paging import newest_first


async def get(session: AsyncSession, ident: int) -> Artifact | None:
    return await session.get(Artifact, ident)


async def get_build(session: AsyncSession, ident: int) -> BuildJob | None:
    return await session.get(BuildJob, ident)


async def page(
    session: AsyncSession, *, fields: Mapping[str, Any], limit: int, offset: int
) -> tuple[int, list[Artifact]]:
    """Artifacts whose columns equal ``fields`` (those not None), newest first."""
    return await newest_first(session, Artifact, fields=fields, limit=limit, offset=offset)


async def of_build(session: AsyncSession, build_id: int) -> list[Artifact]:
    rows = await session.scalars(
        select(Artifact).where(Artifact.build_job_id == build_id).order_by(Artifact.name, Artifact.id)
    )
    return list(rows)


async def newest_succeeded_build(
    session: AsyncSession, *, repository_url: str, branch: str | None, architecture: str
) -> BuildJob | None:
    """The succeeded build of this branch and architecture that started last.

    A build resolves its commit when it starts, so the one that started last built the
    newest state of the branch; the order builds finish in depends only on how long they took.
    """
    stmt = (
        select(BuildJob)
        .where(
            BuildJob.repository_url == repository_url,
            BuildJob.branch.is_(None) if branch is None else BuildJob.branch == branch,
            BuildJob.architecture == architecture,
            BuildJob.status == SUCCEEDED,
        )
        .order_by(func.coalesce(BuildJob.started_at, BuildJob.queued_at).desc(), BuildJob.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def everything(session: AsyncSession) -> list[Artifact]:
    """Every artifact row, newest first (retention ranks them per branch and architecture)."""
    rows = await session.scalars(select(Artifact).order_by(Artifact.created_at.desc(), Artifact.id.desc()))
    return list(rows)


async def referenced_ids(session: AsyncSession) -> set[int]:
    return set(await session.scalars(select(ArtifactReference.artifact_id).distinct()))


async def digest_in_use(session: AsyncSession, sha256: str) -> bool:
    found = await session.scalar(select(Artifact.id).where(Artifact.sha256 == sha256).limit(1))
    return found is not None
