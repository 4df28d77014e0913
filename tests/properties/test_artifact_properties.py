"""Property 5: ``latest`` for a branch and architecture is always the newest succeeded build's artifacts.

Run at the service level on SQLite and PostgreSQL, over any history of builds of one branch and
architecture (any statuses, start times, ties, artifacts or none) mixed with builds of another
branch and another architecture. Each example works in a SAVEPOINT that is rolled back.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.errors import NotFound
from labfleet.schemas.artifacts import ArtifactType
from labfleet.schemas.auth import SYSTEM
from labfleet.services.artifacts import service as artifacts
from labfleet.storage.fakes import MemoryStore
from tests.db.build_rows import EPOCH, REPO, build_job
from tests.helpers import example

PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

builds = st.lists(
    st.tuples(
        st.sampled_from(STATUSES),
        st.integers(0, 20),  # start minute: ties happen
        st.integers(0, 3),  # how many artifacts it stored
        st.sampled_from([("main", "arm64"), ("main", "arm64"), ("dev", "arm64"), ("main", "x86_64")]),
    ),
    max_size=12,
)


@PROPERTY
@given(history=builds)
async def test_property_5_artifact_retrieval_consistency(
    session: AsyncSession, tmp_path: Path, history: list[tuple[str, int, int, tuple[str, str]]]
) -> None:
    # Validates: 4.5
    store = MemoryStore()
    async with example(session):
        expected: tuple[tuple[int, int], set[int]] | None = None
        for status, minute, count, (branch, arch) in history:
            started = EPOCH + timedelta(minutes=minute)
            job = await build_job(
                session,
                status=status,
                branch=branch,
                architecture=arch,
                queued_at=started,
                started_at=started,
            )
            stored = set()
            for i in range(count):
                path = tmp_path / f"{job.id}-{i}"
                path.write_bytes(f"{job.id}/{i}".encode())
                artifact = await artifacts.store_artifact(
                    session=session,
                    store=store,
                    build_job=job,
                    path=path,
                    name=f"out-{i}",
                    type=ArtifactType.kernel,
                    actor=SYSTEM,
                )
                stored.add(artifact.id)
            rank = (minute, job.id)
            newer = expected is None or rank > expected[0]
            if status == "succeeded" and (branch, arch) == ("main", "arm64") and newer:
                expected = (rank, stored)

        if expected is None:
            with pytest.raises(NotFound):
                await artifacts.latest(
                    session=session, repository_url=REPO, branch="main", architecture="arm64"
                )
            return
        found = await artifacts.latest(
            session=session, repository_url=REPO, branch="main", architecture="arm64"
        )
        assert found.build.id == expected[0][1]
        assert {a.id for a in found.artifacts} == expected[1]
        assert all(
            (a.branch, a.architecture, a.build_job_id) == ("main", "arm64", found.build.id)
            for a in found.artifacts
        )
