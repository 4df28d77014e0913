"""The artifact service on both backends: storing once, finding, verified reads, alerts, retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert, Artifact, ArtifactReference, AuditEntry, BuildJobStatusChoice
from labfleet.errors import Conflict, Corrupted, NotFound
from labfleet.schemas.artifacts import ArtifactType
from labfleet.schemas.auth import SYSTEM
from labfleet.services.artifacts import service as artifacts
from labfleet.storage import LocalStore
from tests.db.build_rows import EPOCH, build_job, damage


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def _store(
    session: AsyncSession, store: LocalStore, tmp_path: Path, job: object, name: str, data: bytes
) -> Artifact:
    return await artifacts.store_artifact(
        session=session,
        store=store,
        build_job=job,  # type: ignore[arg-type]
        path=_file(tmp_path, f"{name}.{id(job)}", data),
        name=name,
        type=ArtifactType.kernel,
        actor=SYSTEM,
    )


async def _blobs(store: LocalStore) -> list[str]:
    return [d async for d in store.digests()]


async def test_build_job_statuses_are_seeded(session: AsyncSession) -> None:
    values = list(
        await session.scalars(select(BuildJobStatusChoice.value).order_by(BuildJobStatusChoice.position))
    )
    assert values == ["queued", "running", "succeeded", "failed", "cancelled"]


async def test_an_artifact_type_must_be_known(session: AsyncSession) -> None:
    session.add(
        Artifact(sha256="0" * 64, size=1, name="x", type="tarball", repository_url="r", architecture="a")
    )
    with pytest.raises(IntegrityError):
        await session.flush()


async def test_the_same_content_is_stored_once(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.1, 4.2
    one, two = await build_job(session), await build_job(session)
    a = await _store(session, store, tmp_path, one, "Image", b"kernel bytes")
    b = await _store(session, store, tmp_path, two, "Image", b"kernel bytes")
    assert a.id != b.id and a.sha256 == b.sha256
    assert await _blobs(store) == [a.sha256]
    assert (a.build_job_id, a.commit, a.architecture, a.size) == (one.id, one.resolved_commit, "arm64", 12)
    await session.flush()
    audits = await session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.object_type == "artifact")
    )
    assert audits == 2


async def test_one_name_per_build(session: AsyncSession, store: LocalStore, tmp_path: Path) -> None:
    job = await build_job(session)
    await _store(session, store, tmp_path, job, "Image", b"a")
    with pytest.raises(Conflict):
        await _store(session, store, tmp_path, job, "Image", b"b")
    assert len(await artifacts.for_build(session=session, build_id=job.id)) == 1


async def test_retrieval_by_build_id_and_by_commit(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.3
    one, two = await build_job(session), await build_job(session)
    kernel = await _store(session, store, tmp_path, one, "Image", b"k1")
    dtb = await _store(session, store, tmp_path, one, "board.dtb", b"d1")
    await _store(session, store, tmp_path, two, "Image", b"k2")
    assert [a.id for a in await artifacts.for_build(session=session, build_id=one.id)] == [kernel.id, dtb.id]
    assert one.resolved_commit is not None
    found = await artifacts.for_commit(session=session, commit=one.resolved_commit)
    assert {a.id for a in found} == {kernel.id, dtb.id}
    assert await artifacts.for_commit(session=session, commit="f" * 40) == []


async def test_latest_is_the_newest_succeeded_build(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.5
    old = await build_job(session)
    await _store(session, store, tmp_path, old, "Image", b"old")
    await build_job(session, status="failed")
    await build_job(session, architecture="x86_64")
    await build_job(session, branch="dev")
    found = await artifacts.latest(
        session=session, repository_url=old.repository_url, branch="main", architecture="arm64"
    )
    assert found.build.id == old.id
    assert [a.name for a in found.artifacts] == ["Image"]
    with pytest.raises(NotFound):
        await artifacts.latest(session=session, repository_url="nowhere", branch="main", architecture="arm64")


async def test_a_corrupted_blob_is_never_read_and_raises_one_alert(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.2, 16.2
    job = await build_job(session)
    artifact = await _store(session, store, tmp_path, job, "Image", b"x" * 5000)
    damage(store.root, artifact.sha256, at=4000)
    for _ in range(3):
        with pytest.raises(Corrupted):
            await artifacts.open_verified(session=session, store=store, artifact=artifact)
    with pytest.raises(Corrupted):
        await artifacts.open_verified(session=session, store=store, artifact=artifact, offset=10, length=10)
    alert = (await session.scalars(select(Alert))).one()
    assert (alert.resource_kind, alert.resource_id, alert.kind) == ("artifact", artifact.id, "corrupted")
    assert (alert.severity, alert.state, alert.occurrences) == ("critical", "open", 4)
    assert alert.last_seen_at >= alert.first_seen_at


async def test_a_missing_blob_is_reported_as_corrupted(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    job = await build_job(session)
    artifact = await _store(session, store, tmp_path, job, "Image", b"gone soon")
    await store.delete(artifact.sha256)
    with pytest.raises(Corrupted):
        await artifacts.open_verified(session=session, store=store, artifact=artifact)
    assert (await session.scalars(select(Alert))).one().kind == "corrupted"


async def test_a_good_blob_reads_whole_and_in_ranges(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    job = await build_job(session)
    data = bytes(range(256)) * 10
    artifact = await _store(session, store, tmp_path, job, "Image", data)
    whole = await artifacts.open_verified(session=session, store=store, artifact=artifact)
    assert b"".join([c async for c in whole]) == data
    part = await artifacts.open_verified(
        session=session, store=store, artifact=artifact, offset=100, length=50
    )
    assert b"".join([c async for c in part]) == data[100:150]


# -- retention (R4.4)


async def _history(
    session: AsyncSession, store: LocalStore, tmp_path: Path, count: int, *, shared: bytes | None = None
) -> list[Artifact]:
    """``count`` succeeded builds of main/arm64, one kernel each, created a day apart, oldest first."""
    made = []
    for day in range(count):
        job = await build_job(session)
        artifact = await _store(session, store, tmp_path, job, "Image", shared or f"kernel {day}".encode())
        artifact.created_at = EPOCH + timedelta(days=day)
        made.append(artifact)
    await session.flush()
    return made


async def _remaining(session: AsyncSession) -> set[int]:
    return set(await session.scalars(select(Artifact.id)))


async def test_retention_keeps_the_last_n_builds(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.4
    made = await _history(session, store, tmp_path, 5)
    removal = await artifacts.apply_retention(
        session=session, store=store, now=EPOCH + timedelta(days=5), keep_last=2, max_age=None
    )
    assert {a.id for a in removal.artifacts} == {a.id for a in made[:3]}
    assert await _remaining(session) == {a.id for a in made[3:]}
    assert sorted(removal.blobs) == sorted(a.sha256 for a in made[:3])
    assert sorted(await _blobs(store)) == sorted(a.sha256 for a in made[3:])
    await session.flush()
    deletes = await session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "delete")
    )
    assert deletes == 3


async def test_retention_respects_max_age_but_keeps_what_latest_resolves_to(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.4, 4.5
    made = await _history(session, store, tmp_path, 4)
    removal = await artifacts.apply_retention(
        session=session, store=store, now=EPOCH + timedelta(days=30), keep_last=10, max_age=timedelta(days=7)
    )
    # All are older than a week; the newest build's are what `latest` returns, so they stay.
    assert {a.id for a in removal.artifacts} == {a.id for a in made[:3]}
    assert await _remaining(session) == {made[3].id}


async def test_retention_never_removes_pinned_or_referenced_artifacts(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.4
    made = await _history(session, store, tmp_path, 4)
    await artifacts.set_pinned(session=session, actor=SYSTEM, ident=made[0].id, pinned=True)
    session.add(ArtifactReference(artifact_id=made[1].id, holder_kind="environment", holder_id=7))
    await session.flush()
    removal = await artifacts.apply_retention(
        session=session, store=store, now=EPOCH + timedelta(days=30), keep_last=1, max_age=timedelta(days=1)
    )
    assert {a.id for a in removal.artifacts} == {made[2].id}
    assert await _remaining(session) == {made[0].id, made[1].id, made[3].id}


async def test_retention_frees_a_blob_only_when_no_row_uses_it(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.4 (store once, remove once)
    made = await _history(session, store, tmp_path, 3, shared=b"same bytes in every build")
    removal = await artifacts.apply_retention(
        session=session, store=store, now=EPOCH + timedelta(days=3), keep_last=1, max_age=None
    )
    assert len(removal.artifacts) == 2
    assert removal.blobs == []
    assert await _blobs(store) == [made[0].sha256]


async def test_the_database_refuses_to_delete_a_referenced_artifact(
    session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    (artifact,) = await _history(session, store, tmp_path, 1)
    session.add(ArtifactReference(artifact_id=artifact.id, holder_kind="pipeline", holder_id=1))
    await session.flush()
    await session.delete(artifact)
    with pytest.raises(IntegrityError):
        await session.flush()
