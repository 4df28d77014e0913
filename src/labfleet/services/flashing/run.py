"""Running a claimed flash job to its end (R6.2-6.5; property 15).

``run_job`` (from the engine's worker, which claimed the job under a lease): with the
board's device lock held (``services/core/device_locks.py``), the artifact's bytes are
read verified from the store into a temporary file; the flash driver writes and verifies
them (its read-back digest, or the firmware version where the driver can read one),
reporting progress that is stored on the row (at most once per ``progress_interval_s``,
with the lease's heartbeat) and announced on ``board:<id>`` and ``flash-job:<id>``; then,
with ``boot_check``, the board is power-cycled and its console watched for the boot
pattern (``power/cycle.run_cycle``: the flash job holds the lock already, and the power
service refuses a flashing board).

**How it ends**: success sets the board's firmware version and makes this artifact its
known-good image (held by an artifact reference, so retention never removes it), and
gives the board its status back. A failure once the board was written to writes the
known-good image back (verified, booted) and ends ``rolled_back`` with the reason, the
firmware unchanged; if there is none, or the rollback fails too, the job is ``failed``,
the board ``failed`` and a critical ``flash-failed`` alert raised. A failure before
anything was written (the artifact unreadable, the station unusable) fails the job and
leaves the board as it was. The firmware version changes only on success.

Unlike the use cases of ``service.py``, a run commits: its own short transactions, with
no device work inside one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Board, FlashJob
from labfleet.db.models.flashing import (
    FAILED,
    FLASH,
    ROLLBACK,
    ROLLED_BACK,
    SUCCEEDED,
)
from labfleet.db.repositories import flashing as repo
from labfleet.errors import Conflict
from labfleet.schemas.auth import SYSTEM, Actor
from labfleet.schemas.enums import BoardStatus
from labfleet.services.artifacts.service import Store
from labfleet.services.core.device_locks import device_lock
from labfleet.services.core.events import EventBus
from labfleet.services.core.leases import LeaseKeeper, Renewal
from labfleet.services.flashing.access import FlashHardware
from labfleet.services.flashing.imaging import BoardState, Failed, ImageWriting, Target
from labfleet.services.flashing.run_state import Sessions
from labfleet.services.flashing.service import (
    FLASH_FAILED,
    RESOURCE_KIND,
    FlashPolicy,
    announce,
    display,
    hold_known_good,
)
from labfleet.services.power import records as board_records

log = logging.getLogger(__name__)

# -- running


@dataclass(slots=True)
class _Verdict:
    status: str
    error: str | None = None
    board_status: str | None = None
    """The board's status afterwards; None: the one it had before the job."""
    firmware: bool = False
    alert: str | None = None


class JobRun(ImageWriting):
    """One claimed job, run to its end by ``run()``."""

    async def run(self) -> FlashJob | None:
        """Run the job under the board's lock; the finished row, or None if it could not run now
        (the board busy: back in the queue) or the lease was lost."""
        job = self.job
        self.steps = list(job.detail.get("steps", []))
        async with self.sessions() as session:
            found = await repo.board(session, job.board_id)
            if found is None:
                return None  # the board was removed: its jobs went with it
            state = BoardState(found, await repo.labels(session, job.board_id))
        what = f"{display(job, state.board.name)} by {job.requested_by}"
        async with contextlib.AsyncExitStack() as stack:
            lock_session = await stack.enter_async_context(self.sessions())
            try:
                await stack.enter_async_context(
                    device_lock(session=lock_session, kind=RESOURCE_KIND, ident=job.board_id, what=what)
                )
            except Conflict as exc:
                # Something started before the board became flashing still runs: wait for it.
                log.info("flash job %s waits: %s", job.id, exc.message)
                async with self.sessions() as session:
                    await repo.unclaim(session, job_id=job.id, worker=self.worker, count_attempt=False)
                    await session.commit()
                return None
            return await self._run_locked(state)
        return None  # pragma: no cover - the stack above returns or raises

    async def _run_locked(self, state: BoardState) -> FlashJob | None:
        job = self.job
        self._note("start", "running", mode=job.mode, worker=self.worker)
        announce(self.bus, job)
        work = asyncio.create_task(self._work(state), name=f"flash-{job.id}")
        keeper = self._keeper(work)
        beat = asyncio.create_task(keeper.run(), name=f"flash-{job.id}-beat")
        progress = asyncio.create_task(self._store_progress(keeper), name=f"flash-{job.id}-progress")
        try:
            verdict = await work
        except asyncio.CancelledError:
            if not keeper.lost:
                # Stopped from outside (the worker stopping): give the job back, whole, to be
                # run again from the start; the attempt counts.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._give_back())
                raise
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            log.warning(
                "flash job %s: worker %s lost its lease; leaving it to its new holder", job.id, self.worker
            )
            return None
        except Exception as exc:
            log.exception("flash job %s failed unexpectedly", job.id)
            verdict = _Verdict(
                FAILED,
                error=f"labfleet failed while flashing: {exc}",
                board_status=BoardStatus.failed.value,
                alert=f"board {state.board.name}: labfleet failed while flashing it: {exc}",
            )
        finally:
            beat.cancel()
            progress.cancel()
            await asyncio.gather(beat, progress, return_exceptions=True)
        return await self._conclude(state, verdict)

    async def _give_back(self) -> None:
        self._note("stopped", "failed", error=f"worker {self.worker} stopped; run again from the start")
        async with self.sessions() as session:
            await repo.beat(
                session,
                job_id=self.job.id,
                worker=self.worker,
                lease_seconds=self.policy.lease_seconds,
                now=utcnow(),
                values={"detail": self._detail()},
            )
            await repo.unclaim(session, job_id=self.job.id, worker=self.worker, count_attempt=True)
            await session.commit()

    # -- the work

    async def _work(self, state: BoardState) -> _Verdict:
        job = self.job
        board = state.board
        reason: str | None = job.error if job.mode == ROLLBACK else None
        touched = job.mode == ROLLBACK
        if job.mode == FLASH:
            try:
                if job.artifact_id is None:
                    raise Failed("its artifact was removed before it could be written", touched=False)
                await self._apply(
                    state, Target(job.artifact_id, "image", job.target_version), boot=job.boot_check
                )
                return _Verdict(SUCCEEDED, firmware=True, board_status=_after_success(job))
            except Failed as exc:
                reason, touched = exc.reason, exc.touched
        reason = reason or "rolled back"
        if not touched:
            return _Verdict(FAILED, error=f"{reason}; nothing was written, the board is as it was")
        known_good = job.rollback_artifact_id
        if known_good is None:
            return _Verdict(
                FAILED,
                error=f"{reason}; no known-good image to write back",
                board_status=BoardStatus.failed.value,
                alert=f"board {board.name}: flashing failed and it has no known-good image: {reason}",
            )
        try:
            await self._apply(
                state, Target(known_good, "known-good image", board.firmware_version), boot=job.boot_check
            )
        except Failed as exc:
            return _Verdict(
                FAILED,
                error=f"{reason}; writing the known-good image back failed too: {exc.reason}",
                board_status=BoardStatus.failed.value,
                alert=f"board {board.name}: flashing failed and so did the rollback: {exc.reason}",
            )
        return _Verdict(ROLLED_BACK, error=f"{reason}; the known-good image was written back")

    # -- the lease

    def _keeper(self, work: asyncio.Task[_Verdict]) -> LeaseKeeper:
        """The job's lease; each renewal also stores the progress and steps so far."""

        async def renew() -> Renewal:
            phase, done, total = self._progress
            state = (phase, done, total, len(self.steps))
            async with self.sessions() as session:
                held = await repo.beat(
                    session,
                    job_id=self.job.id,
                    worker=self.worker,
                    lease_seconds=self.policy.lease_seconds,
                    now=utcnow(),
                    values={
                        "phase": phase,
                        "bytes_done": done,
                        "bytes_total": total,
                        "detail": self._detail(),
                    },
                )
                await session.commit()
            if held:
                self._stored = state
            return Renewal(held=held)

        return LeaseKeeper(
            what=f"flash job {self.job.id}",
            renew=renew,
            lease_seconds=self.policy.lease_seconds,
            heartbeat_seconds=self.policy.heartbeat_seconds,
            on_lost=work.cancel,
        )

    async def _store_progress(self, keeper: LeaseKeeper) -> None:
        """Progress worth storing renews at once, at most once per ``progress_interval_s``."""
        while True:
            await asyncio.sleep(self.policy.progress_interval_s)
            phase, done, total = self._progress
            if (phase, done, total, len(self.steps)) != self._stored:
                keeper.wake()

    # -- the end

    async def _conclude(self, state: BoardState, verdict: _Verdict) -> FlashJob | None:
        job = self.job
        now = utcnow()
        values = self._final_values(verdict, now)
        async with self.sessions() as session:
            if not await repo.finish(session, job_id=job.id, worker=self.worker, values=values):
                log.warning(
                    "flash job %s ended after its lease was taken over; its result is dropped", job.id
                )
                return None
            await self._settle_board(session, state.board, verdict, now)
            await session.commit()
            finished = await repo.get(session, job.id)
        assert finished is not None
        announce(self.bus, finished)
        return finished

    def _final_values(self, verdict: _Verdict, now: datetime) -> dict[str, Any]:
        """The job's row as it ends: its status, the progress it reached and its steps."""
        self._note("end", verdict.status, error=verdict.error)
        phase, done, total = self._progress
        if verdict.status == SUCCEEDED:
            done = total = self.job.artifact_size
        return {
            "status": verdict.status,
            "error": verdict.error,
            "finished_at": now,
            "phase": "done" if verdict.status == SUCCEEDED else phase,
            "bytes_done": done,
            "bytes_total": total,
            "detail": self._detail(),
        }

    async def _settle_board(
        self, session: AsyncSession, board: Board, verdict: _Verdict, now: datetime
    ) -> None:
        """The board after the job: its status (and firmware, known-good image), its alert, the audit."""
        job = self.job
        board_values: dict[str, Any] = {"status": verdict.board_status or job.previous_status}
        # Known good means seen booting: a flash without a boot check (a pipeline's, whose
        # boot stage checks it) leaves that to whoever saw it boot (``record_known_good``).
        known_good = verdict.firmware and job.boot_check
        if verdict.firmware:
            board_values["firmware_version"] = job.target_version
        if known_good:
            board_values["known_good_artifact_id"] = job.artifact_id
        before = await repo.set_board(
            session, board_id=board.id, values=board_values, when_status=BoardStatus.flashing.value
        )
        if known_good and job.artifact_id is not None:
            await hold_known_good(session, board.id, job.artifact_id)
        await repo.let_go(session, holder_kind=repo.JOB_HOLDER, holder_id=job.id)
        await _flash_alert(session, board, verdict, now)
        if before is not None:
            await board_records.audit_update(
                session=session,
                actor=Actor(name=job.requested_by, role=SYSTEM.role, team=job.team),
                board_id=board.id,
                name=board.name,
                before={"status": before, "firmware_version": board.firmware_version},
                after={k: v for k, v in board_values.items() if k != "known_good_artifact_id"},
            )


async def _flash_alert(session: AsyncSession, board: Board, verdict: _Verdict, now: datetime) -> None:
    """A failed board gets a critical ``flash-failed`` alert; a success resolves it."""
    if verdict.alert is not None:
        await board_records.raise_alert(session, board.id, FLASH_FAILED, verdict.alert, now=now)
    elif verdict.status == SUCCEEDED:
        await board_records.resolve_alert(session=session, board_id=board.id, kind=FLASH_FAILED, now=now)


def _after_success(job: FlashJob) -> str:
    """A board flashed and seen booting is online again, even if it was failed or offline before."""
    if job.boot_check and job.previous_status in (BoardStatus.failed.value, BoardStatus.offline.value):
        return BoardStatus.online.value
    return job.previous_status


async def run_job(
    *,
    sessions: Sessions,
    job: FlashJob,
    worker: str,
    hardware: FlashHardware,
    store: Store,
    policy: FlashPolicy = FlashPolicy(),
    bus: EventBus | None = None,
    scratch: Path | None = None,
) -> FlashJob | None:
    """Run a job ``worker`` claimed; the finished row, or None (back in the queue, or the lease lost)."""
    run = JobRun(
        sessions=sessions,
        job=job,
        worker=worker,
        hardware=hardware,
        store=store,
        policy=policy,
        bus=bus,
        scratch=scratch,
    )
    return await run.run()
