"""The engine: the build worker and the periodic jobs (lease recovery, build server health
checks, retention, reservation expiry, abandoned power actions), started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.builds import BuildWorker
from labfleet.engine.health import HealthMonitor
from labfleet.engine.loops import every
from labfleet.secretbox import SecretBox
from labfleet.services import artifacts, power, reservations
from labfleet.services.artifacts import Store as ArtifactStore
from labfleet.services.build_runner import SshPool
from labfleet.services.build_server_health import HealthPolicy
from labfleet.services.builds import BuildPolicy
from labfleet.services.events import EventBus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    policy: BuildPolicy = field(default_factory=BuildPolicy)
    max_builds: int = 16
    poll_seconds: float = 2.0
    retention_interval_s: float = 3600.0
    health_interval_s: float = 60.0
    health_failure_limit: int = 3
    reservation_sweep_s: float = 15.0


class Engine:
    """``async with Engine(...)``: workers run inside the block and are stopped at its end."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        store: ArtifactStore,
        secrets: SecretBox,
        settings: EngineSettings,
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self._store = store
        self._secrets = secrets
        self._settings = settings
        # Health checks get connections of their own (see engine/health.py).
        self._health_pool = SshPool()
        self._tasks: list[asyncio.Task[None]] = []
        self.worker: BuildWorker | None = None
        self.health: HealthMonitor | None = None

    async def __aenter__(self) -> Engine:
        s = self._settings
        self.worker = BuildWorker(
            sessions=self._sessions,
            bus=self._bus,
            store=self._store,
            secrets=self._secrets,
            policy=s.policy,
            max_builds=s.max_builds,
            poll_seconds=s.poll_seconds,
        )
        self.health = HealthMonitor(
            sessions=self._sessions,
            bus=self._bus,
            secrets=self._secrets,
            pool=self._health_pool,
            policy=HealthPolicy(
                thresholds=s.policy.thresholds,
                failure_limit=s.health_failure_limit,
                max_attempts=s.policy.max_attempts,
            ),
            interval_s=s.health_interval_s,
        )
        self._tasks = [
            asyncio.create_task(self.worker.run(), name="build-worker"),
            asyncio.create_task(self.health.run(), name="build-server-health"),
            asyncio.create_task(
                every(s.retention_interval_s, "artifact retention", self.run_retention, first=60.0),
                name="retention",
            ),
            asyncio.create_task(
                every(s.reservation_sweep_s, "reservation expiry", self.expire_reservations, first=1.0),
                name="reservation-expiry",
            ),
            asyncio.create_task(
                every(s.reservation_sweep_s, "stale power actions", self.fail_stale_power_actions, first=1.0),
                name="power-actions",
            ),
        ]
        log.info("engine started: build worker %s", self.worker.name)
        return self

    async def expire_reservations(self) -> list[int]:
        """Release every reservation past its expiry; logs which."""
        async with self._sessions() as session:
            released = await reservations.expire_due(session=session)
            await session.commit()
        if released:
            log.info("released expired reservations %s", ", ".join(f"#{i}" for i in released))
        return released

    async def fail_stale_power_actions(self) -> list[int]:
        """Power actions whose process died are failed once past their deadline, with the reason."""
        async with self._sessions() as session:
            failed = await power.recover_stale(session=session)
            await session.commit()
        return failed

    async def run_retention(self) -> None:
        """One pass of the retention policy, as the periodic task runs it; logs what it removed."""
        async with self._sessions() as session:
            policy = await artifacts.policy(session=session)
            removal = await artifacts.apply_retention(
                session=session,
                store=self._store,
                now=datetime.now(UTC),
                keep_last=policy.keep_last,
                max_age=None if policy.max_age_days is None else timedelta(days=policy.max_age_days),
            )
            await session.commit()
        if removal.artifacts:
            log.info(
                "retention removed %d artifacts (%s) and %d blobs",
                len(removal.artifacts),
                ", ".join(f"#{a.id} {a.name}" for a in removal.artifacts),
                len(removal.blobs),
            )

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._health_pool.close()
