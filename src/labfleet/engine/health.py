"""Build server health checks, every ``interval`` seconds (R2.1-2.4).

Each round claims the servers due (``services.health.build_servers.due``, committed at
once so that other processes skip them), then checks them at most ``concurrency`` at a
time: the SSH probe runs outside any transaction, and the outcomes are recorded as they
come, those waiting together in one transaction, each in a SAVEPOINT of its own, so one
server's trouble never holds up or undoes another's. Build jobs taken off a server that
went offline are announced after the commit, so that watchers and idle workers learn at once.

The checks use an SSH pool of their own: builds hold their server's session slots for as
long as they run, and a check queued behind them would time out and count a busy server
as unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.batches import probe_then_record
from labfleet.engine.loops import every
from labfleet.schemas.enums import ResourceKind
from labfleet.schemas.settings import LabSettings
from labfleet.secretbox import SecretBox
from labfleet.services.builds import queue as build_queue
from labfleet.services.builds import service as builds
from labfleet.services.builds.run import SshPool
from labfleet.services.core.events import EventBus
from labfleet.services.health import build_servers as health
from labfleet.services.health import tuning
from labfleet.services.health.build_servers import CheckResult, HealthPolicy, Probe, Target

log = logging.getLogger(__name__)


class HealthMonitor:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        secrets: SecretBox,
        pool: SshPool,
        policy: HealthPolicy,
        interval_s: float = 60.0,
        concurrency: int = health.MAX_CONCURRENT_CHECKS,
        lab: Callable[[], LabSettings] | None = None,
    ) -> None:
        """``lab``: the lab settings now; when given, they decide the interval and each server's
        thresholds, read again for every round."""
        self._sessions = sessions
        self._lab = lab
        self._bus = bus
        self._secrets = secrets
        self._pool = pool
        self._policy = policy
        self._interval = interval_s
        self._concurrency = concurrency

    def interval(self) -> float:
        return (
            self._interval if self._lab is None else tuning.interval(self._lab(), ResourceKind.build_server)
        )

    def _next_round(self) -> float:
        return (
            self._interval if self._lab is None else tuning.next_round(self._lab(), ResourceKind.build_server)
        )

    def policy(self, server_id: int) -> HealthPolicy:
        return (
            self._policy if self._lab is None else tuning.build_server(self._policy, self._lab(), server_id)
        )

    async def run(self, *, first: float | None = None) -> None:
        """Check every ``interval`` seconds (the first round after ``first``, one interval by
        default) until cancelled."""
        await every(
            self._next_round,
            "build server health checks",
            self.check_all,
            first=self.interval() if first is None else first,
        )

    async def check_all(self) -> list[CheckResult]:
        """One round: every server due, checked and recorded (``engine/batches.py``); what
        changed is returned."""
        async with self._sessions() as session:
            # Half an interval: a server another process has just checked waits for the next round.
            targets = await health.due(session=session, secrets=self._secrets, min_gap=self.interval() / 2)
            await session.commit()

        async def probe(target: Target) -> Probe:
            timeout = self.policy(target.server_id).timeout_seconds
            return await health.probe(pool=self._pool, target=target, timeout=timeout)

        async def record(session: AsyncSession, probe: Probe) -> CheckResult | None:
            return await health.record(
                session=session, probe=probe, policy=self.policy(probe.target.server_id)
            )

        return await probe_then_record(
            targets,
            sessions=self._sessions,
            probe=probe,
            record=record,
            after=self._announce,
            name=lambda t: f"build server {t.hostname}",
            concurrency=self._concurrency,
        )

    async def _announce(self, result: CheckResult) -> None:
        for job_id, _ in result.jobs:
            async with self._sessions() as session:
                job = await build_queue.job(session=session, job_id=job_id)
            if job is not None:
                builds.announce(self._bus, job)
        _log(result)


def _log(result: CheckResult) -> None:
    if result.changed_status:
        log.warning(
            "build server %s: %s -> %s%s",
            result.hostname,
            result.previous_status,
            result.status,
            f" ({result.error})" if result.error else "",
        )
    elif not result.answered:
        log.info(
            "build server %s did not answer (%d in a row): %s", result.hostname, result.failures, result.error
        )
    if result.jobs:
        log.warning("build server %s: running builds taken off it: %s", result.hostname, list(result.jobs))
