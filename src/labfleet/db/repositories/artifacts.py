"""Queries on artifacts, their references, the retention policy, and the builds they come from."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Artifact, ArtifactReference, BuildJob, RetentionPolicy
from labfleet.db.models.builds import SUCCEEDED


async def get(session: AsyncSession, ident: int) -> Artifact | None:
    return await session.get(Artifact, ident)


async def get_build(session: AsyncSession, ident: int) -> BuildJob | None:
    return await session.get(BuildJob, ident)


async def page(
    session: AsyncSession,
    *,
    build_id: int | None = None,
    commit: str | None = None,
    repository_url: str | None = None,
    branch: str | None = None,
    architecture: str | None = None,
    type_: str | None = None,
    limit: int,
    offset: int,
) -> tuple[int, list[Artifact]]:
    stmt = select(Artifact)
    for column, value in (
        (Artifact.build_job_id, build_id),
        (Artifact.commit, commit),
        (Artifact.repository_url, repository_url),
        (Artifact.branch, branch),
        (Artifact.architecture, architecture),
        (Artifact.type, type_),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(stmt.order_by(Artifact.id.desc()).limit(limit).offset(offset))
    return int(total or 0), list(rows)


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


async def retention_policy(session: AsyncSession) -> RetentionPolicy | None:
    return await session.get(RetentionPolicy, 1)
