"""Build job rows for tests, made directly (there is no submission service yet), and a damaged blob."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildJob

REPO = "https://git.lab/linux.git"
_counter = itertools.count(1)
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


async def build_job(session: AsyncSession, **overrides: Any) -> BuildJob:
    """A build row, succeeded by default, with a distinct commit and start time."""
    n = next(_counter)
    started = EPOCH + timedelta(minutes=n)
    values: dict[str, Any] = {
        "repository_url": REPO,
        "branch": "main",
        "resolved_commit": f"{n:040x}",
        "architecture": "arm64",
        "command": "make",
        "status": "succeeded",
        "submitted_by": "tester",
        "queued_at": started,
        "started_at": started,
        "finished_at": started + timedelta(minutes=5),
    }
    values.update(overrides)
    job = BuildJob(**values)
    session.add(job)
    await session.flush()
    return job


def damage(store_root: Path, digest: str, at: int = 0) -> None:
    """Flip one bit of a stored blob, as a failing disk would."""
    path = store_root / "sha256" / digest[:2] / digest[2:]
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
