"""Artifacts: bytes in the content-addressed store, metadata in the database (R4).

The caller hands in the ``ArtifactStore`` (the API keeps one in ``app.state.store``); the
store is the only code that reads or writes the bytes, and it never hands out bytes that
do not match their SHA-256.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Artifact, BuildJob
from labfleet.db.repositories import artifacts as repo
from labfleet.errors import Conflict, Corrupted, NotFound
from labfleet.schemas.artifacts import ArtifactType
from labfleet.schemas.auth import SYSTEM, Actor
from labfleet.schemas.query import ListQuery
from labfleet.schemas.settings import ArtifactRetention, LabSettings
from labfleet.services.core import alerts, audit, lab_settings
from labfleet.storage import ArtifactStore, LocalStore

OBJECT_TYPE = "artifact"

# The store's type, for the edges, which never import storage/ themselves.
Store = ArtifactStore


def open_store(root: Path) -> ArtifactStore:
    """The store the application serves artifacts from: blobs on the local filesystem under ``root``."""
    return LocalStore(root)


def snapshot(a: Artifact) -> dict[str, Any]:
    return {
        "name": a.name,
        "type": a.type,
        "sha256": a.sha256,
        "size": a.size,
        "build_job_id": a.build_job_id,
        "repository_url": a.repository_url,
        "branch": a.branch,
        "commit": a.commit,
        "architecture": a.architecture,
        "pinned": a.pinned,
    }


# -- storing


async def store_artifact(
    *,
    session: AsyncSession,
    store: ArtifactStore,
    build_job: BuildJob,
    path: Path,
    name: str,
    type: ArtifactType,
    actor: Actor,
    expected: str | None = None,
) -> Artifact:
    """Put the file's bytes in the store (once per content), then record what they are."""
    blob = await store.put_file(path, expected=expected)
    return await record_artifact(
        session=session,
        build_job=build_job,
        sha256=blob.sha256,
        size=blob.size,
        name=name,
        type=type,
        actor=actor,
    )


async def record_artifact(
    *,
    session: AsyncSession,
    build_job: BuildJob,
    sha256: str,
    size: int,
    name: str,
    type: ArtifactType | str,
    actor: Actor,
) -> Artifact:
    """Record an artifact whose bytes the store already holds (``put_file`` returned them)."""
    artifact = Artifact(
        sha256=sha256,
        size=size,
        name=name,
        type=ArtifactType(type).value,
        build_job_id=build_job.id,
        repository_url=build_job.repository_url,
        branch=build_job.branch,
        commit=build_job.resolved_commit or build_job.requested_commit,
        architecture=build_job.architecture,
    )
    try:
        async with session.begin_nested():
            session.add(artifact)
            await session.flush()
    except IntegrityError as exc:
        # The blob stays: it may be another artifact's too, and retention frees unused ones.
        raise Conflict(f"build {build_job.id} already has an artifact named {name!r}", field="name") from exc
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type=OBJECT_TYPE,
        object_id=artifact.id,
        display=artifact.name,
        after=snapshot(artifact),
    )
    return artifact


# -- finding


async def get(*, session: AsyncSession, ident: int) -> Artifact:
    artifact = await repo.get(session, ident)
    if artifact is None:
        raise NotFound(f"no artifact with id {ident}", field="id")
    return artifact


async def search(*, session: AsyncSession, query: ListQuery) -> tuple[int, list[Artifact]]:
    """A page of artifacts; ``query.fields`` are columns (``build_job_id``, ``commit``,
    ``repository_url``, ``branch``, ``architecture``, ``type``) and the values they must equal."""
    return await repo.page(session, fields=query.fields, limit=query.limit, offset=query.offset)


async def for_build(*, session: AsyncSession, build_id: int) -> list[Artifact]:
    """Every artifact a build stored (R4.3)."""
    return await repo.of_build(session, build_id)


async def for_commit(*, session: AsyncSession, commit: str) -> list[Artifact]:
    """Every artifact built from exactly this commit hash (R4.3)."""
    _, rows = await repo.page(session, fields={"commit": commit}, limit=10_000, offset=0)
    return rows


@dataclass(frozen=True)
class Latest:
    build: BuildJob
    artifacts: list[Artifact]


async def latest(
    *, session: AsyncSession, repository_url: str, branch: str | None, architecture: str
) -> Latest:
    """The artifacts of the newest succeeded build of this branch and architecture (R4.5, property 5)."""
    build = await repo.newest_succeeded_build(
        session, repository_url=repository_url, branch=branch, architecture=architecture
    )
    if build is None:
        raise NotFound(
            f"no succeeded build of {repository_url} branch {branch} for {architecture}", field="branch"
        )
    return Latest(build=build, artifacts=await repo.of_build(session, build.id))


# -- reading the bytes


async def open_verified(
    *,
    session: AsyncSession,
    store: ArtifactStore,
    artifact: Artifact,
    offset: int = 0,
    length: int | None = None,
) -> AsyncIterator[bytes]:
    """The artifact's bytes (whole, or ``length`` from ``offset``), checked before the first one is sent.

    A whole read is re-hashed first, so that damage is reported before anything looks like
    success (the store would otherwise only notice at the last chunk); a range read is checked
    by the store itself. A damaged or missing blob raises a critical alert and ``Corrupted``.
    The caller must commit for the alert to outlive the failed request.
    """
    digest = artifact.sha256
    try:
        whole = offset == 0 and (length is None or length == artifact.size)
        if whole:
            check = await store.verify(digest)
            if not check.ok:
                raise Corrupted(
                    f"artifact {artifact.id} ({artifact.name}) is corrupted: "
                    f"its bytes hash to {check.actual}",
                    expected=digest,
                    actual=check.actual,
                )
            return await store.open(digest)
        return await store.open(digest, offset=offset, length=length)
    except NotFound as exc:
        await _report(session, artifact, f"the blob of artifact {artifact.id} ({artifact.name}) is missing")
        raise Corrupted(exc.message, expected=digest, actual="") from exc
    except Corrupted as exc:
        await _report(session, artifact, exc.message)
        raise


async def _report(session: AsyncSession, artifact: Artifact, message: str) -> None:
    await alerts.raise_alert(
        session=session,
        resource_kind=OBJECT_TYPE,
        resource_id=artifact.id,
        kind="corrupted",
        severity="critical",
        message=message,
    )


# -- pins


async def set_pinned(*, session: AsyncSession, actor: Actor, ident: int, pinned: bool) -> Artifact:
    """Pin (retention keeps it whatever its age) or unpin an artifact."""
    artifact = await get(session=session, ident=ident)
    if artifact.pinned == pinned:
        return artifact
    before = snapshot(artifact)
    artifact.pinned = pinned
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="update",
        object_type=OBJECT_TYPE,
        object_id=artifact.id,
        display=artifact.name,
        before=before,
        after=snapshot(artifact),
    )
    return artifact


# -- retention


@dataclass
class Removal:
    """What one retention run removed: artifact rows, and the blobs no remaining row used."""

    artifacts: list[Artifact] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)


async def policy(*, session: AsyncSession) -> ArtifactRetention:
    """The lab settings' artifact retention (no process setting gives it a default of its own)."""
    return (await lab_settings.read(session, LabSettings())).settings.artifact_retention


async def apply_retention(
    *,
    session: AsyncSession,
    store: ArtifactStore,
    now: datetime,
    keep_last: int,
    max_age: timedelta | None,
    actor: Actor = SYSTEM,
) -> Removal:
    """Remove artifacts beyond the last ``keep_last`` builds per repository, branch and architecture,
    or older than ``max_age``; never pinned ones, referenced ones (R4.4), or those ``latest`` resolves to.

    Rows go first (flushed, audited), then each blob that no remaining row uses.
    """
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    doomed = await _beyond_retention(session, now=now, keep_last=keep_last, max_age=max_age)
    for artifact in doomed:
        await session.delete(artifact)
    await session.flush()
    for artifact in doomed:
        await audit.record(
            session=session,
            actor=actor,
            action="delete",
            object_type=OBJECT_TYPE,
            object_id=artifact.id,
            display=artifact.name,
            before={**snapshot(artifact), "reason": "retention"},
        )
    return Removal(artifacts=doomed, blobs=await _free_blobs(session, store, doomed))


async def _beyond_retention(
    session: AsyncSession, *, now: datetime, keep_last: int, max_age: timedelta | None
) -> list[Artifact]:
    """The artifacts retention removes, newest first within each repository, branch and architecture."""
    referenced = await repo.referenced_ids(session)
    groups: dict[tuple[str, str | None, str], list[Artifact]] = {}
    for artifact in await repo.everything(session):  # newest first
        groups.setdefault((artifact.repository_url, artifact.branch, artifact.architecture), []).append(
            artifact
        )

    doomed: list[Artifact] = []
    for (repository_url, branch, architecture), members in groups.items():
        newest = await repo.newest_succeeded_build(
            session, repository_url=repository_url, branch=branch, architecture=architecture
        )
        # One generation per build (an artifact without a build is one of its own), ranked by
        # its newest artifact; members are newest first, so first sight gives the rank.
        kept_generations: set[tuple[str, int]] = set()
        for artifact in members:
            generation = _generation(artifact)
            if len(kept_generations) < keep_last:
                kept_generations.add(generation)
            too_old = max_age is not None and now - artifact.created_at > max_age
            if generation in kept_generations and not too_old:
                continue
            if artifact.pinned or artifact.id in referenced:
                continue
            if newest is not None and artifact.build_job_id == newest.id:
                continue
            doomed.append(artifact)
    return doomed


async def _free_blobs(session: AsyncSession, store: ArtifactStore, removed: list[Artifact]) -> list[str]:
    """Delete the blobs of removed artifacts that no remaining row uses; their digests."""
    freed: list[str] = []
    for digest in sorted({a.sha256 for a in removed}):
        if await repo.digest_in_use(session, digest):
            continue  # the same content belongs to an artifact that stays
        with contextlib.suppress(NotFound):  # already gone: nothing to free
            await store.delete(digest)
        freed.append(digest)
    return freed


def _generation(artifact: Artifact) -> tuple[str, int]:
    if artifact.build_job_id is not None:
        return ("build", artifact.build_job_id)
    return ("artifact", artifact.id)
