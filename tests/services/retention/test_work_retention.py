"""Retention of what grows, on SQLite and PostgreSQL: old logs go (their work stays, and
says when), but a pinned artifact's build keeps its log; old power actions, flash jobs
(not a board's last good one) and resolved alerts go; audit entries are archived, durably,
before they are removed, in batches.

Validates: 8.4 (retention), 16.2 (alert history), audit log (R15)
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import (
    Alert,
    AlertEvent,
    Artifact,
    AuditEntry,
    Board,
    BuildJob,
    BuildLogChunk,
    FlashJob,
    Pipeline,
    PipelineLogChunk,
    PowerAction,
)
from labfleet.errors import Gone
from labfleet.schemas.settings import WorkRetention
from labfleet.services.builds import service as builds
from labfleet.services.retention import service as retention
from tests.db.build_rows import build_job

Sessions = async_sessionmaker[AsyncSession]
NOW = utcnow()
OLD = NOW - timedelta(days=1000)  # past every default age
RECENT = NOW - timedelta(days=2)


@pytest.fixture
async def sessions(fresh_db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(fresh_db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _lab(session: AsyncSession) -> dict[str, int]:
    """Old and recent work of every kind; the ids the test looks for."""
    old, pinned, recent = (
        await build_job(
            session, queued_at=OLD, started_at=OLD, finished_at=OLD + timedelta(minutes=5), log_size=9
        ),
        await build_job(
            session, queued_at=OLD, started_at=OLD, finished_at=OLD + timedelta(minutes=5), log_size=9
        ),
        await build_job(session, queued_at=RECENT, started_at=RECENT, finished_at=RECENT, log_size=9),
    )
    for job in (old, pinned, recent):
        session.add(BuildLogChunk(build_job_id=job.id, offset=0, data=b"make all\n"))
    session.add(
        Artifact(
            sha256="ab" * 32,
            size=1,
            name="Image",
            type="kernel",
            repository_url="r",
            branch="main",
            commit="c" * 40,
            architecture="arm64",
            build_job_id=pinned.id,
            pinned=True,
        )
    )
    pipeline = Pipeline(
        repository_url="r",
        architecture="arm64",
        environment_type="board",
        spec={},
        status="failed",
        submitted_by="ci",
        started_at=OLD,
        finished_at=OLD,
        log_size=4,
    )
    session.add(pipeline)
    board = Board(
        name="rpi-1", board_type="rpi4", architecture="arm64", serial_number="SN1", labels=[], peripherals=[]
    )
    session.add(board)
    await session.flush()
    session.add(PipelineLogChunk(pipeline_id=pipeline.id, offset=0, data=b"boot"))
    for finished in (OLD, RECENT, None):
        session.add(
            PowerAction(
                board_id=board.id,
                action="cycle",
                requested_by="ci",
                holder="h",
                started_at=OLD,
                deadline_at=OLD,
                finished_at=finished,
                status="succeeded" if finished else "running",
            )
        )
    flashes = []
    for status in ("succeeded", "succeeded", "failed"):
        job = FlashJob(
            board_id=board.id,
            artifact_sha256="ab" * 32,
            artifact_size=1,
            requested_by="ci",
            target_version="v1",
            previous_status="online",
            status=status,
            created_at=OLD,
            finished_at=OLD,
        )
        session.add(job)
        await session.flush()
        flashes.append(job.id)
    gone = Alert(
        resource_kind="board",
        resource_id=board.id,
        kind="boot_failed",
        severity="critical",
        message="m",
        state="resolved",
        resolved_at=OLD,
    )
    kept = Alert(
        resource_kind="board",
        resource_id=board.id,
        kind="unreachable",
        severity="critical",
        message="m",
        first_seen_at=OLD,
    )
    session.add_all([gone, kept])
    await session.flush()
    session.add(
        AlertEvent(
            alert_id=gone.id,
            event="raised",
            severity="critical",
            resource_kind="board",
            resource_id=board.id,
            kind="boot_failed",
            message="m",
        )
    )
    for n in range(5):
        session.add(
            AuditEntry(
                actor="alice",
                action="update",
                object_type="board",
                object_id=board.id,
                at=OLD + timedelta(minutes=n),
                after={"n": n},
            )
        )
    session.add(AuditEntry(actor="bob", action="update", object_type="board", object_id=board.id, at=RECENT))
    await session.commit()
    return {
        "old": old.id,
        "pinned": pinned.id,
        "recent": recent.id,
        "pipeline": pipeline.id,
        "last_good": flashes[1],
        "kept_alert": kept.id,
    }


async def test_one_pass_removes_what_is_past_its_age_and_keeps_the_rest(
    sessions: Sessions, tmp_path: Path
) -> None:
    async with sessions() as session:
        ids = await _lab(session)
    archive = tmp_path / "audit-archive"
    done = await retention.apply(sessions, ages=WorkRetention(), archive_dir=archive, now=NOW, batch=2)

    assert (done.build_logs, done.pipeline_logs, done.power_actions) == (1, 1, 1)
    assert (done.flash_jobs, done.resolved_alerts, done.audit_entries) == (2, 1, 5)
    async with sessions() as session:
        chunks = set(await session.scalars(select(BuildLogChunk.build_job_id)))
        assert chunks == {ids["pinned"], ids["recent"]}
        old = await session.get(BuildJob, ids["old"])
        assert old is not None and old.logs_pruned_at is not None and old.log_size == 9
        with pytest.raises(Gone, match="removed by retention at"):
            await builds.read_log(session=session, ident=ids["old"])
        assert await _count(session, PipelineLogChunk) == 0
        assert await _count(session, PowerAction) == 2  # the recent one and the one still running
        assert list(await session.scalars(select(FlashJob.id))) == [ids["last_good"]]
        assert list(await session.scalars(select(Alert.id))) == [ids["kept_alert"]]
        assert await _count(session, AlertEvent) == 0
        assert list(await session.scalars(select(AuditEntry.actor))) == ["bob"]

    # Archived before removed, two entries a batch: every old entry is in the archive, once.
    assert [p.name.endswith(".jsonl.gz") for p in done.archives] == [True, True, True]
    lines = [
        json.loads(line)
        for p in sorted(done.archives)
        for line in gzip.decompress(p.read_bytes()).splitlines()
    ]
    assert [e["after"]["n"] for e in lines] == [0, 1, 2, 3, 4]
    assert {p.parent for p in done.archives} == {archive}
    assert {p.stat().st_mode & 0o777 for p in done.archives} == {0o600}
    assert not any(p.name.endswith(".part") for p in done.archives)

    again = await retention.apply(sessions, ages=WorkRetention(), archive_dir=archive, now=NOW, batch=2)
    assert not again.any()


async def test_an_age_left_unset_keeps_that_kind_for_ever(sessions: Sessions, tmp_path: Path) -> None:
    async with sessions() as session:
        await _lab(session)
    keep = WorkRetention(build_logs_days=None, audit_log_days=None, flash_jobs_days=None)
    done = await retention.apply(sessions, ages=keep, archive_dir=tmp_path, now=NOW)
    assert (done.build_logs, done.audit_entries, done.flash_jobs) == (0, 0, 0)
    assert done.power_actions == 1
    assert done.archives == []
