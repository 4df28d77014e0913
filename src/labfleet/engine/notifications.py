"""The notification worker: publishes the outbox of alert changes and delivers it
(``services/notifications/delivery.py``).

One per ``labfleet serve``; several share the work through the database (one wins each
change, each delivery is leased). Every ``poll_seconds`` it publishes what is new (on the
events bus, topic ``alerts``, after the commit) and claims as many due deliveries as it has
free slots, each sent in a task of its own so that a slow receiver holds up only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.loops import utcnow
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.core.leases import worker_name
from labfleet.services.notifications import delivery
from labfleet.services.notifications.policy import NotificationPolicy
from labfleet.services.notifications.sending import LiveSender, Sender

log = logging.getLogger(__name__)


class NotificationWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        secrets: SecretBox,
        policy: NotificationPolicy,
        sender: Sender | None = None,
    ) -> None:
        """``sender`` replaces the real transports (unit tests)."""
        self._sessions = sessions
        self._bus = bus
        self._secrets = secrets
        self.policy = policy
        self._sender = sender
        self.name = worker_name("notify")
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            sender: Sender
            if self._sender is not None:
                sender = self._sender
            else:
                sender = await stack.enter_async_context(LiveSender(timeout_s=self.policy.timeout_seconds))
            try:
                while True:
                    try:
                        await self.step(sender)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception(
                            "notification step failed; trying again in %g s", self.policy.poll_seconds
                        )
                    await asyncio.sleep(self.policy.poll_seconds)
            finally:
                # Deliveries in flight are left leased: another process retries them after the
                # lease, as it would had this one died.
                for task in list(self._inflight):
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)

    async def step(self, sender: Sender) -> None:
        """Publish what is new, then start the deliveries that are due, as slots allow."""
        async with self._sessions() as session:
            taken = await delivery.publish_due(session, now=utcnow())
            await session.commit()
        for event in taken:
            self._bus.publish(delivery.TOPIC, delivery.announcement(event))
        free = self.policy.concurrency - len(self._inflight)
        if free <= 0:
            return
        async with self._sessions() as session:
            jobs = await delivery.claim_due(
                session, self._secrets, owner=self.name, now=utcnow(), policy=self.policy, limit=free
            )
            await session.commit()
        for job in jobs:
            task = asyncio.create_task(self._deliver(sender, job), name=f"notify-{job.notice.key}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _deliver(self, sender: Sender, job: delivery.Job) -> None:
        outcome = await delivery.attempt(sender, job, timeout_s=self.policy.timeout_seconds)
        async with self._sessions() as session:
            state = await delivery.finish(
                session, job, outcome, owner=self.name, now=utcnow(), policy=self.policy
            )
            await session.commit()
        log.info(
            "notification %s to channel %s: %s (try %d)", job.notice.key, job.route.name, state, job.attempt
        )
