"""What the build and flash workers share: the name their leases are held under, where they work,
and how often they recover the expired leases of other workers."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Generic, Protocol, TypedDict, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.secretbox import SecretBox
from labfleet.services.artifacts.service import Store
from labfleet.services.builds.queue import worker_id
from labfleet.services.core.events import EventBus

log = logging.getLogger(__name__)


class LeasedPolicy(Protocol):
    @property
    def lease_seconds(self) -> float: ...


P = TypeVar("P", bound=LeasedPolicy)


class WorkerOptions(TypedDict, total=False):
    """How every store worker may be tuned: its poll, its scratch directory, its lease name."""

    poll_seconds: float
    scratch: Path | None
    name: str | None


class StoreWorker(ABC, Generic[P]):
    """A worker that claims durable work from the database, runs it by its policy ``P`` and keeps
    what it makes in the store."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        store: Store,
        secrets: SecretBox,
        policy: P,
        poll_seconds: float = 2.0,
        scratch: Path | None = None,
        name: str | None = None,
    ) -> None:
        # The name is what a lease row says holds the job: unique per process unless given.
        self.name = name or worker_id()
        self._sessions = sessions
        self._bus = bus
        self._store = store
        self._secrets = secrets
        self._policy = policy
        self._poll = poll_seconds
        self._scratch = scratch
        self._recovered_at = float("-inf")

    @abstractmethod
    async def recover(self) -> list[tuple[int, str]]:
        """Give back or fail the jobs whose lease expired: ``(job id, what became of it)``."""

    async def _recover_if_due(self) -> None:
        # A quarter of a lease: an expired job waits at most that long for another worker.
        loop = asyncio.get_running_loop()
        if loop.time() - self._recovered_at < max(self._policy.lease_seconds / 4, 0.5):
            return
        self._recovered_at = loop.time()
        try:
            await self.recover()
        except Exception:
            log.exception("%s: recovering expired leases failed; retrying later", type(self).__name__)
