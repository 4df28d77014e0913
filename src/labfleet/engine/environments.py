"""The environment worker: provisions standalone environments and tears them down.

It claims an environment that is ``pending`` (deploy, then boot: ``ready``, or ``failed``
with everything it held released) or ``releasing`` (torn down: ``released``) under a lease.
An environment whose worker died is claimed again once its lease expires: one that was
being provisioned is torn down and failed with the reason. Ready environments past their
expiry are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.loops import utcnow
from labfleet.schemas.enums import EnvironmentStatus
from labfleet.services.core.events import EventBus
from labfleet.services.core.leases import LeaseKeeper, Renewal, worker_name
from labfleet.services.environments import service as environments
from labfleet.services.environments.provisioning import Provisioner, ProvisionFailed

log = logging.getLogger(__name__)


class EnvironmentWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        provisioner: Provisioner,
        lease_seconds: float = 60.0,
        poll_seconds: float = 5.0,
        max_running: int = 16,
        name: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.provisioner = provisioner
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.max_running = max_running
        self.name = name or worker_name("environments")
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            async with self.bus.listening([environments.TOPIC_ALL]) as asked:
                while True:
                    claimed = None
                    if len(self._running) < self.max_running:
                        try:
                            async with self.sessions() as session:
                                claimed = await environments.claim(
                                    session, worker=self.name, lease_seconds=self.lease_seconds, now=utcnow()
                                )
                                await session.commit()
                        except Exception:
                            log.exception("claiming an environment failed")
                    if claimed is None:
                        # Until one is created or released here (an event), or the poll interval.
                        await asked.get(timeout=self.poll_seconds)
                        continue
                    task = asyncio.create_task(self._handle(claimed.id, claimed.status, claimed.attempt))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
        finally:
            # Their teardowns end here, while the database and devices they use are still there.
            tasks = list(self._running)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def expire(self, now: datetime | None = None) -> list[int]:
        """Ready standalone environments past their expiry are released."""
        async with self.sessions() as session:
            due = await environments.expire(session, now or utcnow())
            await session.commit()
        return due

    async def _handle(self, env_id: int, status: str, attempt: int) -> None:
        work = asyncio.create_task(self._work(env_id, status, attempt), name=f"environment-{env_id}")

        async def renew() -> Renewal:
            async with self.sessions() as session:
                held = await environments.beat(
                    session, env_id=env_id, worker=self.name, lease_seconds=self.lease_seconds, now=utcnow()
                )
                await session.commit()
            return Renewal(held=held)

        keeper = LeaseKeeper(
            what=f"environment {env_id}",
            renew=renew,
            lease_seconds=self.lease_seconds,
            heartbeat_seconds=self.lease_seconds / 4,
            on_lost=work.cancel,
        )
        async with keeper.kept():
            try:
                await work
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not keeper.lost or (current is not None and current.cancelling()):
                    work.cancel()
                    raise
                # Another worker may hold it now: it finds the environment mid-provisioning
                # and fails and tears it down with the reason; nothing more is written here.

    async def _work(self, env_id: int, status: str, attempt: int) -> None:
        try:
            if status == EnvironmentStatus.releasing:
                await self.provisioner.teardown(env_id, reason="released")
            elif status == EnvironmentStatus.provisioning or (
                status == EnvironmentStatus.pending and attempt > 0
            ):
                await self._fail(env_id, "interrupted: the labfleet process provisioning it stopped")
            else:
                try:
                    await self.provisioner.deploy(env_id)
                    await self.provisioner.boot(env_id)
                except ProvisionFailed as exc:
                    healthy = await self.provisioner.check_resource(env_id)
                    blame = "" if healthy else f"; {exc.resource} failed its health check"
                    await self._fail(env_id, exc.message + blame)
                else:
                    async with self.sessions() as session:
                        await environments.provisioned(session, env_id)
                        await session.commit()
        except Exception:
            log.exception("environment %s: provisioning failed in labfleet itself", env_id)
            with contextlib.suppress(Exception):
                await self._fail(env_id, "internal error in labfleet (see its log)")

    async def _fail(self, env_id: int, reason: str) -> None:
        await self.provisioner.teardown(env_id, reason=f"failed: {reason}", error=reason)
