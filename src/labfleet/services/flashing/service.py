"""Flashing a board as durable work (R6.2-6.5; property 15).

**Asking** (``request_flash``, an operator): the board's row is locked, then checked: it
has a flash driver; it is not decommissioned, in maintenance, or ``failed`` (unless
forced); no flash job of it is unfinished; no reservation of someone else holds it (one
of the requester's is fine). The artifact must exist and be built for the board's
architecture (``Invalid`` otherwise). Then, in that one transaction, the board becomes
``flashing`` (its status before is kept on the job) and the job is ``queued``. While the
board is ``flashing`` it takes no reservation (``services/reservations``), no power
action (``services/power``) and no other flash; the database allows one unfinished
job per board.

**Running** is ``run.py``'s: the device work of a claimed job, and how it ends.

**Durability**: a worker that stops heartbeating loses its lease; ``recover`` runs the job
again from the start (one more attempt) up to ``max_attempts``, then queues a rollback
of the known-good image (or, with none, fails it and the board with an alert). No job
stays ``running`` and no board stays ``flashing``.

Asking for a job and recovering only flush; the caller commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.models import Artifact, Board, FlashJob
from labfleet.db.models.flashing import (
    FAILED,
    FLASH,
    QUEUED,
    ROLLBACK,
)
from labfleet.db.repositories import flashing as repo
from labfleet.errors import Conflict, NotFound
from labfleet.schemas.auth import SYSTEM, Actor
from labfleet.schemas.enums import BoardStatus
from labfleet.schemas.flashing import FlashRequest
from labfleet.services.core import audit
from labfleet.services.core.events import EventBus
from labfleet.services.flashing.admission import (
    artifact_for,
    decide_boot_check,
    refuse_if_busy,
    refuse_if_held,
)
from labfleet.services.power import records as board_records
from labfleet.services.power.announce import topic as board_topic
from labfleet.services.power.service import DEFAULT_BOOT_PATTERN
from labfleet.services.power.wiring import unconfigured

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]

TOPIC_ALL = "flash-jobs"
"""Every job's status: workers wake on it."""
RESOURCE_KIND = board_records.RESOURCE_KIND
FLASH_FAILED = "flash-failed"
OBJECT_TYPE = "flash-job"


def topic(job_id: int) -> str:
    """Where one job's progress and status are announced."""
    return f"flash-job:{job_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashPolicy:
    write_timeout_s: float = 1800.0
    verify_timeout_s: float = 600.0
    version_timeout_s: float = 60.0
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 5.0
    progress_interval_s: float = 1.0
    """Progress is stored and announced at most this often (and at each phase)."""
    max_attempts: int = 2
    """Runs of a job by processes that stopped before one finished; then it is rolled back."""
    boot_attempts: int = 1
    boot_timeout_s: float = 180.0
    off_s: float = 2.0
    command_timeout_s: float = 30.0
    console_open_timeout_s: float = 10.0
    boot_pattern: str = DEFAULT_BOOT_PATTERN


def snapshot(job: FlashJob) -> dict[str, Any]:
    return {
        "board_id": job.board_id,
        "artifact_id": job.artifact_id,
        "status": job.status,
        "mode": job.mode,
        "target_version": job.target_version,
        "boot_check": job.boot_check,
        "attempt": job.attempt,
        "error": job.error,
    }


# -- asking


async def request_flash(
    *,
    session: AsyncSession,
    actor: Actor,
    board_id: int,
    data: FlashRequest,
    policy: FlashPolicy = FlashPolicy(),
    now: datetime | None = None,
) -> FlashJob:
    """Queue a flash of the board, which becomes ``flashing`` at once; flushes, the caller commits."""
    now = now or utcnow()
    board = await repo.lock_board(session, board_id)
    if board is None:
        raise NotFound(f"no board with id {board_id}", field="id")
    if board.flash_driver is None:
        raise unconfigured(board.name, "flash station", field="flash")
    await refuse_if_busy(session, board, force=data.force)
    await refuse_if_held(session, board, actor, now)
    artifact = await artifact_for(session, board, data.artifact_id)
    boot_check = decide_boot_check(board, data.boot_check)
    job = FlashJob(
        board_id=board.id,
        artifact_id=artifact.id,
        artifact_sha256=artifact.sha256,
        artifact_size=artifact.size,
        requested_by=actor.name,
        team=actor.team,
        status=QUEUED,
        mode=FLASH,
        bytes_done=0,
        bytes_total=artifact.size,
        target_version=data.version or _version_of(artifact),
        previous_status=board.status,
        rollback_artifact_id=board.known_good_artifact_id,
        boot_check=boot_check,
        attempt=0,
        max_attempts=policy.max_attempts,
        detail={"steps": []},
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(job)
            await session.flush()
    except IntegrityError as exc:  # the partial unique index: another flash got in first
        raise Conflict(f"board {board.name} refuses a flash: it is being flashed", field="status") from exc
    before = board.status
    await repo.set_board(session, board_id=board.id, values={"status": BoardStatus.flashing.value})
    await repo.hold_artifact(session, artifact_id=artifact.id, holder_kind=repo.JOB_HOLDER, holder_id=job.id)
    await _audit_request(session, actor, board, job, before)
    return job


async def _audit_request(
    session: AsyncSession, actor: Actor, board: Board, job: FlashJob, before: str
) -> None:
    """The job as asked, and the board it made ``flashing``."""
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type=OBJECT_TYPE,
        object_id=job.id,
        display=display(job, board.name),
        after=snapshot(job),
    )
    await board_records.audit_status(session, actor, board.id, board.name, before, BoardStatus.flashing)


def _version_of(artifact: Artifact) -> str:
    return artifact.commit or f"sha256:{artifact.sha256[:12]}"


def display(job: FlashJob, board_name: str) -> str:
    return f"flash job #{job.id} of board {board_name}"


async def get(*, session: AsyncSession, job_id: int) -> FlashJob:
    job = await repo.get(session, job_id)
    if job is None:
        raise NotFound(f"no flash job with id {job_id}", field="id")
    return job


async def history(
    *,
    session: AsyncSession,
    board_id: int,
    statuses: list[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[FlashJob]]:
    if await repo.board(session, board_id) is None:
        raise NotFound(f"no board with id {board_id}", field="id")
    return await repo.history(session, board_id=board_id, statuses=statuses or (), limit=limit, offset=offset)


def announce(bus: EventBus | None, job: FlashJob) -> None:
    """A job's status on ``flash-jobs``, ``flash-job:<id>`` and ``board:<id>``."""
    if bus is None:
        return
    event = {
        "type": "flash",
        "job": job.id,
        "board": job.board_id,
        "status": job.status,
        "mode": job.mode,
        "phase": job.phase,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "attempt": job.attempt,
        "error": job.error,
    }
    for name in (TOPIC_ALL, topic(job.id), board_topic(job.board_id)):
        bus.publish(name, event)


# -- claiming


async def claim_next(
    *, session: AsyncSession, worker: str, policy: FlashPolicy, now: datetime | None = None
) -> FlashJob | None:
    return await repo.claim_next(
        session, worker=worker, lease_seconds=policy.lease_seconds, now=now or utcnow()
    )


async def recover(
    *, session: AsyncSession, now: datetime | None = None, actor: Actor = SYSTEM
) -> list[tuple[int, str]]:
    """Jobs whose worker stopped heartbeating: run again, rolled back, or failed. Flushes."""
    now = now or utcnow()
    done: list[tuple[int, str]] = []
    for job in await repo.expired(session, now=now):
        owner = job.lease_owner or "?"
        who = f"lease expired: worker {owner} stopped heartbeating during attempt {job.attempt}"
        steps = [*job.detail.get("steps", []), step_record(job.attempt, "lease-expired", "failed", error=who)]
        detail = {**job.detail, "steps": steps}
        if job.mode == FLASH and job.attempt < job.max_attempts:
            values: dict[str, Any] = {"status": QUEUED, "error": f"{who}; run again from the start"}
            outcome = "requeued"
        elif job.mode == FLASH and job.rollback_artifact_id is not None:
            values = {
                "status": QUEUED,
                "mode": ROLLBACK,
                "error": f"{who}; all {job.max_attempts} attempts used: the known-good image is written back",
            }
            outcome = "rollback"
        else:
            reason = (
                f"{who}; all {job.max_attempts} attempts used and no known-good image to write back"
                if job.mode == FLASH
                else f"{who} while writing the known-good image back"
            )
            values = {"status": FAILED, "error": reason, "finished_at": now, "phase": None}
            outcome = "failed"
        if not await repo.take_expired(session, job_id=job.id, now=now, values={**values, "detail": detail}):
            continue
        if outcome == "failed":
            board = await repo.board(session, job.board_id)
            name = board.name if board is not None else str(job.board_id)
            await _board_failed(session, actor, job, name, str(values["error"]), now)
            await repo.let_go(session, holder_kind=repo.JOB_HOLDER, holder_id=job.id)
        done.append((job.id, outcome))
    if done:
        log.warning("recovered flash jobs whose worker stopped: %s", done)
    return done


async def record_known_good(*, session: AsyncSession, board_id: int, artifact_id: int) -> None:
    """The image now on the board was seen booting: the one to roll back to from now on. Flushes."""
    await repo.set_board(session, board_id=board_id, values={"known_good_artifact_id": artifact_id})
    await hold_known_good(session, board_id, artifact_id)


async def hold_known_good(session: AsyncSession, board_id: int, artifact_id: int) -> None:
    await repo.let_go(session, holder_kind=repo.BOARD_HOLDER, holder_id=board_id)
    await repo.hold_artifact(
        session, artifact_id=artifact_id, holder_kind=repo.BOARD_HOLDER, holder_id=board_id
    )


def step_record(attempt: int, step: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "step": step,
        "status": status,
        "at": utcnow().isoformat(),
        **{k: v for k, v in extra.items() if v is not None},
    }


async def _board_failed(
    session: AsyncSession, actor: Actor, job: FlashJob, name: str, reason: str, now: datetime
) -> None:
    before = await repo.set_board(
        session,
        board_id=job.board_id,
        values={"status": BoardStatus.failed.value},
        when_status=BoardStatus.flashing.value,
    )
    failed = f"board {name}: flash job #{job.id} failed: {reason}"
    await board_records.raise_alert(session, job.board_id, FLASH_FAILED, failed, now=now)
    if before is not None:
        await board_records.audit_status(session, actor, job.board_id, name, before, BoardStatus.failed)


__all__ = [
    "FLASH_FAILED",
    "TOPIC_ALL",
    "FlashPolicy",
    "announce",
    "claim_next",
    "get",
    "history",
    "recover",
    "request_flash",
    "topic",
]
