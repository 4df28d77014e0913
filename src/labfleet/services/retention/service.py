"""One retention pass over finished work, by the lab settings' ages (``retention``).

Each kind goes in batches, each batch a transaction of its own, so that a year of history
is removed without one long lock. Logs are removed but their work stays (``logs_pruned_at``
says when; reading them answers 410); work that produced a pinned artifact keeps its log,
and a board keeps its last good flash. Audit entries past their age are first written to
the audit archive (gzipped JSON lines, one file per batch, named by the ids it holds, made
durable before anything is deleted), then removed: nothing of the audit log is lost.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models import AuditEntry
from labfleet.db.repositories import retention as repo
from labfleet.schemas.settings import WorkRetention

BATCH = 500


@dataclass(slots=True)
class Removed:
    build_logs: int = 0
    pipeline_logs: int = 0
    power_actions: int = 0
    flash_jobs: int = 0
    resolved_alerts: int = 0
    audit_entries: int = 0
    archives: list[Path] = field(default_factory=list)

    def any(self) -> bool:
        return any(
            (
                self.build_logs,
                self.pipeline_logs,
                self.power_actions,
                self.flash_jobs,
                self.resolved_alerts,
                self.audit_entries,
            )
        )


Sessions = async_sessionmaker[AsyncSession]


async def _batches(sessions: Sessions, step: Callable[[AsyncSession], Awaitable[int]], batch: int) -> int:
    total = 0
    while True:
        async with sessions() as session:
            removed = await step(session)
            await session.commit()
        total += removed
        if removed < batch:
            return total


def entry_json(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "token_id": e.token_id,
        "action": e.action,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "object_display": e.object_display,
        "before": e.before,
        "after": e.after,
    }


def _archive(directory: Path, entries: list[AuditEntry]) -> Path:
    """The entries written and synced to disk before they may be deleted."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = directory / f"audit-{entries[0].id:012d}-{entries[-1].id:012d}.jsonl.gz"
    partial = final.with_name(final.name + ".part")
    # Who did what is for admins: readable by labfleet's user only, as the database is.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            for e in entries:
                f.write(json.dumps(entry_json(e), sort_keys=True).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    partial.replace(final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


async def export(
    session: AsyncSession, *, since: datetime | None, before: datetime | None, page: int = BATCH
) -> AsyncIterator[bytes]:
    """The audit log as JSON lines, oldest first, read a page at a time."""
    after = 0
    while True:
        entries = await repo.audit_entries(session, since=since, before=before, after_id=after, limit=page)
        for e in entries:
            yield json.dumps(entry_json(e), sort_keys=True).encode() + b"\n"
        if len(entries) < page:
            return
        after = entries[-1].id


async def _audit(
    sessions: Sessions, before: datetime, archive_dir: Path, removed: Removed, batch: int
) -> None:
    while True:
        async with sessions() as session:
            entries = await repo.old_audit_entries(session, before=before, limit=batch)
            if not entries:
                return
            # Off the event loop: the archive is synced to disk before anything is deleted.
            removed.archives.append(await asyncio.to_thread(_archive, archive_dir, entries))
            removed.audit_entries += await repo.delete_audit_entries(
                session, up_to_id=entries[-1].id, before=before
            )
            await session.commit()
        if len(entries) < batch:
            return


async def apply(
    sessions: Sessions, *, ages: WorkRetention, archive_dir: Path, now: datetime, batch: int = BATCH
) -> Removed:
    """One pass; what it removed (and where the audit entries went)."""
    removed = Removed()

    def cutoff(days: int) -> datetime:
        return now - timedelta(days=days)

    if ages.build_logs_days is not None:
        before = cutoff(ages.build_logs_days)
        removed.build_logs = await _batches(
            sessions, lambda s: repo.prune_build_logs(s, before=before, now=now, limit=batch), batch
        )
    if ages.pipeline_logs_days is not None:
        before_p = cutoff(ages.pipeline_logs_days)
        removed.pipeline_logs = await _batches(
            sessions, lambda s: repo.prune_pipeline_logs(s, before=before_p, now=now, limit=batch), batch
        )
    if ages.power_actions_days is not None:
        before_a = cutoff(ages.power_actions_days)
        removed.power_actions = await _batches(
            sessions, lambda s: repo.prune_power_actions(s, before=before_a, limit=batch), batch
        )
    if ages.flash_jobs_days is not None:
        before_f = cutoff(ages.flash_jobs_days)
        removed.flash_jobs = await _batches(
            sessions, lambda s: repo.prune_flash_jobs(s, before=before_f, limit=batch), batch
        )
    if ages.resolved_alerts_days is not None:
        before_r = cutoff(ages.resolved_alerts_days)
        removed.resolved_alerts = await _batches(
            sessions, lambda s: repo.prune_resolved_alerts(s, before=before_r, limit=batch), batch
        )
    if ages.audit_log_days is not None:
        await _audit(sessions, cutoff(ages.audit_log_days), archive_dir, removed, batch)
    return removed
