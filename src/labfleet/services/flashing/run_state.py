"""A claimed flash job's run as it goes: what it was given, the steps it records and the
progress it announces (on ``board:<id>`` and ``flash-job:<id>``, at most once per
``progress_interval_s`` within a phase). ``run.py`` stores both with each lease renewal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models import FlashJob
from labfleet.hw.flash import FlashProgress, Phase
from labfleet.services.artifacts.service import Store
from labfleet.services.core.events import EventBus
from labfleet.services.flashing.access import FlashHardware
from labfleet.services.flashing.service import FlashPolicy, step_record, topic
from labfleet.services.power.announce import topic as board_topic

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class RunState:
    """What a run was given, and what it has recorded and announced so far."""

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
