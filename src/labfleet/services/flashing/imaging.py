"""Putting one image on a board, for a flash job's run: staged from the store, written,
verified (the driver's read-back digest, else asked afterwards), booted with the console
watched when asked, and its firmware version checked where the driver can read one.

``Failed`` says why not, and whether the board was written to already (then the run
writes the known-good image back).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labfleet.db.models import Board
from labfleet.db.repositories import flashing as repo
from labfleet.errors import Corrupted, LabfleetError
from labfleet.hw.flash import FlashProtocol, ImageDigest, Phase
from labfleet.services.artifacts import service as artifacts
from labfleet.services.flashing.access import FlashWiring
from labfleet.services.flashing.run_state import RunState
from labfleet.services.power.access import BoardWiring
from labfleet.services.power.cycle import CyclePlan, Step, run_cycle
from labfleet.services.power.service import BOOT_PATTERN_LABEL


@dataclass(slots=True)
class Target:
    """One image to put on the board: the job's, or the known-good one."""

    artifact_id: int
    what: str
    version: str | None
    """Checked against what the driver reads back, where it can read a version."""


class Failed(Exception):
    """Why an image could not be put on the board; ``touched``: the board was written to already."""

    def __init__(self, reason: str, *, touched: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.touched = touched


@dataclass
class BoardState:
    """The board as the run found it before taking its lock, with its labels."""

    board: Board
    labels: dict[str, str]


class ImageWriting(RunState):
    """A run that can stage, write, verify and boot an image on its board."""

    async def _apply(self, state: BoardState, target: Target, *, boot: bool) -> None:
        """Stage, write, verify (and boot) an image; ``Failed`` says why not and if the board was touched."""
        board = state.board
        wiring = FlashWiring.of(board)
        try:
            flash = self.hardware.flash(wiring)
        except LabfleetError as exc:
            raise Failed(exc.message, touched=False) from exc
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
                raise Failed(f"writing the {target.what} failed: {exc.message}", touched=True) from exc
            self._note("write", "succeeded", target=target.what, sha256=written.sha256, size=written.size)
            await self._verify(flash, written, digest, target)
            if boot:
                await self._boot(state, target)
            await self._check_version(flash, target)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    async def _stage(self, target: Target, directory: Path) -> tuple[Path, ImageDigest]:
        self._set_progress("stage", 0, 0)
        self._note("stage", "running", target=target.what, artifact_id=target.artifact_id)
        async with self.sessions() as session:
            artifact = await repo.artifact(session, target.artifact_id)
            if artifact is None:
                raise Failed(f"the {target.what} (artifact {target.artifact_id}) was removed", touched=False)
            path = directory / Path(artifact.name).name
            try:
                chunks = await artifacts.open_verified(session=session, store=self.store, artifact=artifact)
                with path.open("wb") as out:
                    async for chunk in chunks:
                        await asyncio.to_thread(out.write, chunk)
            except Corrupted as exc:
                await session.commit()  # the corruption alert stays
                self._note("stage", "failed", target=target.what, error=exc.message)
                raise Failed(f"the {target.what} cannot be read: {exc.message}", touched=False) from exc
            digest = ImageDigest(artifact.sha256, artifact.size)
        self._note("stage", "succeeded", target=target.what, size=digest.size)
        return path, digest

    async def _verify(
        self, flash: FlashProtocol, written: ImageDigest, expected: ImageDigest, target: Target
    ) -> None:
        if written != expected:
            self._note("verify", "failed", target=target.what)
            raise Failed(
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
                raise Failed(f"verifying the {target.what} failed: {exc.message}", touched=True) from exc
            if not ok:
                self._note("verify", "failed", target=target.what, error="the board does not hold it")
                raise Failed(f"verifying the {target.what} failed: the board does not hold it", touched=True)
        self._note("verify", "succeeded", target=target.what, sha256=expected.sha256)

    async def _check_version(self, flash: FlashProtocol, target: Target) -> None:
        try:
            running = await flash.read_version(timeout=self.policy.version_timeout_s)
        except LabfleetError as exc:
            self._note("version", "failed", target=target.what, error=exc.message)
            raise Failed(f"reading the firmware version failed: {exc.message}", touched=True) from exc
        if running is None or target.version is None:
            return
        if running != target.version:
            self._note("version", "failed", target=target.what, running=running, expected=target.version)
            raise Failed(
                f"the board runs firmware {running!r} after the {target.what} was written, "
                f"not {target.version!r}",
                touched=True,
            )
        self._note("version", "succeeded", target=target.what, running=running)

    async def _boot(self, state: BoardState, target: Target) -> None:
        board = state.board
        wiring = BoardWiring.of(board)
        self._set_progress("boot", self._progress[1], self._progress[2])
        try:
            power = self.hardware.power(wiring)
        except LabfleetError as exc:
            raise Failed(f"the boot check cannot be made: {exc.message}", touched=True) from exc
        pattern = state.labels.get(BOOT_PATTERN_LABEL) or self.policy.boot_pattern
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise Failed(
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
            raise Failed(f"the boot check of the {target.what} failed: {error.message}", touched=True)
        if not result.booted:
            last = result.attempts[-1].error if result.attempts else None
            self._note("boot", "failed", target=target.what, attempts=tries, error=last)
            raise Failed(
                f"the {target.what} did not boot: no {pattern!r} on the console within "
                f"{plan.boot_timeout_s:g} s ({last})",
                touched=True,
            )
        self._note("boot", "succeeded", target=target.what, attempts=tries)
