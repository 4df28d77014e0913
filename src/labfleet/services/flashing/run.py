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
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from labfleet.errors import Conflict, Corrupted, LabfleetError
from labfleet.hw.flash import FlashProgress, FlashProtocol, ImageDigest, Phase
from labfleet.schemas.auth import SYSTEM, Actor
from labfleet.schemas.enums import BoardStatus
from labfleet.services.artifacts import service as artifacts
from labfleet.services.artifacts.service import Store
from labfleet.services.core.device_locks import device_lock
from labfleet.services.core.events import EventBus
from labfleet.services.core.leases import LeaseKeeper, Renewal
from labfleet.services.flashing.access import FlashHardware, FlashWiring
from labfleet.services.flashing.service import (
    FLASH_FAILED,
    RESOURCE_KIND,
    FlashPolicy,
    announce,
    display,
    hold_known_good,
    step_record,
    topic,
)
from labfleet.services.power import records as board_records
from labfleet.services.power.access import BoardWiring
from labfleet.services.power.announce import topic as board_topic
from labfleet.services.power.cycle import CyclePlan, Step, run_cycle
from labfleet.services.power.service import BOOT_PATTERN_LABEL

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


# -- running


@dataclass(slots=True)
class _Verdict:
    status: str
    error: str | None = None
    board_status: str | None = None
    """The board's status afterwards; None: the one it had before the job."""
    firmware: bool = False
    alert: str | None = None


@dataclass(slots=True)
class _Target:
    """One image to put on the board: the job's, or the known-good one."""

    artifact_id: int
    what: str
    version: str | None
    """Checked against what the driver reads back, where it can read a version."""


class _Failed(Exception):
    def __init__(self, reason: str, *, touched: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.touched = touched


@dataclass
class _Board:
    board: Board
    labels: dict[str, str]


@dataclass
class JobRun:
    """One claimed job, run to its end by ``run()``."""

    sessions: Sessions
    job: FlashJob
    worker: str
    hardware: FlashHardware
    store: Store
    policy: FlashPolicy
    bus: EventBus | None = None
    scratch: Path | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    _progress: tuple[str | None, int, int] = (None, 0, 0)
    _stored: tuple[str | None, int, int, int] = (None, 0, 0, 0)
    _announced_at: float = 0.0
    _announced_phase: str | None = None
    _verified: bool = False

    async def run(self) -> FlashJob | None:
        """Run the job under the board's lock; the finished row, or None if it could not run now
        (the board busy: back in the queue) or the lease was lost."""
        job = self.job
        self.steps = list(job.detail.get("steps", []))
        async with self.sessions() as session:
            found = await repo.board(session, job.board_id)
            if found is None:
                return None  # the board was removed: its jobs went with it
            state = _Board(found, await repo.labels(session, job.board_id))
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

    async def _run_locked(self, state: _Board) -> FlashJob | None:
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

    async def _work(self, state: _Board) -> _Verdict:
        job = self.job
        board = state.board
        reason: str | None = job.error if job.mode == ROLLBACK else None
        touched = job.mode == ROLLBACK
        if job.mode == FLASH:
            try:
                if job.artifact_id is None:
                    raise _Failed("its artifact was removed before it could be written", touched=False)
                await self._apply(
                    state, _Target(job.artifact_id, "image", job.target_version), boot=job.boot_check
                )
                return _Verdict(SUCCEEDED, firmware=True, board_status=_after_success(job))
            except _Failed as exc:
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
                state, _Target(known_good, "known-good image", board.firmware_version), boot=job.boot_check
            )
        except _Failed as exc:
            return _Verdict(
                FAILED,
                error=f"{reason}; writing the known-good image back failed too: {exc.reason}",
                board_status=BoardStatus.failed.value,
                alert=f"board {board.name}: flashing failed and so did the rollback: {exc.reason}",
            )
        return _Verdict(ROLLED_BACK, error=f"{reason}; the known-good image was written back")

    async def _apply(self, state: _Board, target: _Target, *, boot: bool) -> None:
        """Stage, write, verify (and boot) an image; ``_Failed`` says why not and if the board was touched."""
        board = state.board
        wiring = FlashWiring.of(board)
        try:
            flash = self.hardware.flash(wiring)
        except LabfleetError as exc:
            raise _Failed(exc.message, touched=False) from exc
        directory = Path(tempfile.mkdtemp(prefix=f"labfleet-flash-{self.job.id}-", dir=self.scratch))
        try:
            image, digest = await self._stage(target, directory)
            self._verified = False
            self._set_progress(Phase.WRITE.value, 0, digest.size)
            self._note("write", "running", target=target.what, artifact_id=target.artifact_id)
            try:
                written = await flash.write(
                    image, timeout=self.policy.write_timeout_s, progress=self._on_progress
                )
            except LabfleetError as exc:
                self._note("write", "failed", target=target.what, error=exc.message)
                raise _Failed(f"writing the {target.what} failed: {exc.message}", touched=True) from exc
            self._note("write", "succeeded", target=target.what, sha256=written.sha256, size=written.size)
            await self._verify(flash, written, digest, target)
            if boot:
                await self._boot(state, target)
            await self._check_version(flash, target)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    async def _stage(self, target: _Target, directory: Path) -> tuple[Path, ImageDigest]:
        self._set_progress("stage", 0, 0)
        self._note("stage", "running", target=target.what, artifact_id=target.artifact_id)
        async with self.sessions() as session:
            artifact = await repo.artifact(session, target.artifact_id)
            if artifact is None:
                raise _Failed(f"the {target.what} (artifact {target.artifact_id}) was removed", touched=False)
            path = directory / Path(artifact.name).name
            try:
                chunks = await artifacts.open_verified(session=session, store=self.store, artifact=artifact)
                with path.open("wb") as out:
                    async for chunk in chunks:
                        await asyncio.to_thread(out.write, chunk)
            except Corrupted as exc:
                await session.commit()  # the corruption alert stays
                self._note("stage", "failed", target=target.what, error=exc.message)
                raise _Failed(f"the {target.what} cannot be read: {exc.message}", touched=False) from exc
            digest = ImageDigest(artifact.sha256, artifact.size)
        self._note("stage", "succeeded", target=target.what, size=digest.size)
        return path, digest

    async def _verify(
        self, flash: FlashProtocol, written: ImageDigest, expected: ImageDigest, target: _Target
    ) -> None:
        if written != expected:
            self._note("verify", "failed", target=target.what)
            raise _Failed(
                f"verifying the {target.what} failed: the driver wrote sha256 {written.sha256[:16]}…, "
                f"expected {expected.sha256[:16]}…",
                touched=True,
            )
        if not self._verified:
            # A driver that did not verify as it wrote is asked now.
            self._set_progress(Phase.VERIFY.value, 0, expected.size)
            try:
                ok = await flash.verify(expected, timeout=self.policy.verify_timeout_s)
            except LabfleetError as exc:
                self._note("verify", "failed", target=target.what, error=exc.message)
                raise _Failed(f"verifying the {target.what} failed: {exc.message}", touched=True) from exc
            if not ok:
                self._note("verify", "failed", target=target.what, error="the board does not hold it")
                raise _Failed(f"verifying the {target.what} failed: the board does not hold it", touched=True)
        self._note("verify", "succeeded", target=target.what, sha256=expected.sha256)

    async def _check_version(self, flash: FlashProtocol, target: _Target) -> None:
        try:
            running = await flash.read_version(timeout=self.policy.version_timeout_s)
        except LabfleetError as exc:
            self._note("version", "failed", target=target.what, error=exc.message)
            raise _Failed(f"reading the firmware version failed: {exc.message}", touched=True) from exc
        if running is None or target.version is None:
            return
        if running != target.version:
            self._note("version", "failed", target=target.what, running=running, expected=target.version)
            raise _Failed(
                f"the board runs firmware {running!r} after the {target.what} was written, "
                f"not {target.version!r}",
                touched=True,
            )
        self._note("version", "succeeded", target=target.what, running=running)

    async def _boot(self, state: _Board, target: _Target) -> None:
        board = state.board
        wiring = BoardWiring.of(board)
        self._set_progress("boot", self._progress[1], self._progress[2])
        try:
            power = self.hardware.power(wiring)
        except LabfleetError as exc:
            raise _Failed(f"the boot check cannot be made: {exc.message}", touched=True) from exc
        pattern = state.labels.get(BOOT_PATTERN_LABEL) or self.policy.boot_pattern
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise _Failed(
                f"the boot pattern {pattern!r} is not a regular expression: {exc}", touched=True
            ) from exc
        plan = CyclePlan(
            attempts=self.policy.boot_attempts,
            off_s=self.policy.off_s,
            boot_timeout_s=self.policy.boot_timeout_s,
            command_timeout_s=self.policy.command_timeout_s,
            console_open_timeout_s=self.policy.console_open_timeout_s,
            boot_pattern=regex,
        )
        self._note("boot", "running", target=target.what, boot_pattern=pattern)

        def progress(attempt: int, step: Step) -> None:
            self._publish({"type": "flash-boot", "attempt": attempt, "step": step.value})

        result = await run_cycle(
            power=power, console=self.hardware.console(wiring), plan=plan, progress=progress
        )
        tries = [a.as_dict() for a in result.attempts]
        error = result.console_error or result.controller_error
        if error is not None:
            self._note("boot", "failed", target=target.what, attempts=tries, error=error.message)
            raise _Failed(f"the boot check of the {target.what} failed: {error.message}", touched=True)
        if not result.booted:
            last = result.attempts[-1].error if result.attempts else None
            self._note("boot", "failed", target=target.what, attempts=tries, error=last)
            raise _Failed(
                f"the {target.what} did not boot: no {pattern!r} on the console within "
                f"{plan.boot_timeout_s:g} s ({last})",
                touched=True,
            )
        self._note("boot", "succeeded", target=target.what, attempts=tries)

    # -- progress, steps and the lease

    def _on_progress(self, p: FlashProgress) -> None:
        if p.phase is Phase.VERIFY and p.done >= p.total:
            self._verified = True
        self._set_progress(p.phase.value, p.done, p.total)

    def _set_progress(self, phase: str, done: int, total: int) -> None:
        self._progress = (phase, done, total)
        now = asyncio.get_running_loop().time()
        if phase != self._announced_phase or now - self._announced_at >= self.policy.progress_interval_s:
            self._announced_at, self._announced_phase = now, phase
            self._publish(
                {"type": "flash-progress", "phase": phase, "bytes_done": done, "bytes_total": total}
            )

    def _publish(self, data: dict[str, Any]) -> None:
        if self.bus is None:
            return
        event = {"job": self.job.id, "board": self.job.board_id, "attempt": self.job.attempt, **data}
        self.bus.publish(topic(self.job.id), event)
        self.bus.publish(board_topic(self.job.board_id), event)

    def _note(self, step: str, status: str, **extra: Any) -> None:
        self.steps.append(step_record(self.job.attempt, step, status, **extra))

    def _detail(self) -> dict[str, Any]:
        return {**self.job.detail, "steps": list(self.steps)}

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

    async def _conclude(self, state: _Board, verdict: _Verdict) -> FlashJob | None:
        job = self.job
        board = state.board
        now = utcnow()
        self._note("end", verdict.status, error=verdict.error)
        phase, done, total = self._progress
        if verdict.status == SUCCEEDED:
            done = total = job.artifact_size
        values: dict[str, Any] = {
            "status": verdict.status,
            "error": verdict.error,
            "finished_at": now,
            "phase": "done" if verdict.status == SUCCEEDED else phase,
            "bytes_done": done,
            "bytes_total": total,
            "detail": self._detail(),
        }
        async with self.sessions() as session:
            if not await repo.finish(session, job_id=job.id, worker=self.worker, values=values):
                log.warning(
                    "flash job %s ended after its lease was taken over; its result is dropped", job.id
                )
                return None
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
            actor = Actor(name=job.requested_by, role=SYSTEM.role, team=job.team)
            if verdict.alert is not None:
                await board_records.raise_alert(
                    session=session,
                    board_id=board.id,
                    kind=FLASH_FAILED,
                    severity="critical",
                    message=verdict.alert,
                    now=now,
                )
            elif verdict.status == SUCCEEDED:
                await board_records.resolve_alert(
                    session=session, board_id=board.id, kind=FLASH_FAILED, now=now
                )
            if before is not None:
                await board_records.audit_update(
                    session=session,
                    actor=actor,
                    board_id=board.id,
                    name=board.name,
                    before={"status": before, "firmware_version": board.firmware_version},
                    after={k: v for k, v in board_values.items() if k != "known_good_artifact_id"},
                )
            await session.commit()
            finished = await repo.get(session, job.id)
        assert finished is not None
        announce(self.bus, finished)
        return finished


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
