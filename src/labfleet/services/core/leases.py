"""Keeping the lease of durable work while it runs: one keeper for builds, flash jobs,
pipelines and environments.

A worker claims a row with a lease (``lease_owner`` and ``lease_expires_at``) and renews it
while the work runs; a process that dies stops renewing, and once the lease expires another
process takes the row over. What the keeper promises:

- it renews every ``heartbeat_seconds``, or at once when woken (a cancel announced on the
  event bus, progress worth storing); each renewal (``renew``) is a short transaction of
  its own, with no device work inside;
- a renewal that fails or hangs (the database away for a moment) is tried again every
  ``retry_seconds``, and the work goes on meanwhile;
- the lease is lost when a renewal says so (another process took the row over, or it left
  the state it was held in), or when no renewal has succeeded for ``lease_seconds``: by then
  another process may have claimed it. Then ``on_lost`` is called once (it cancels the work)
  and the keeper stops;
- a cancel that someone requested is surfaced once (``on_cancel``, with who asked), and the
  keeper goes on renewing while the work winds down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


def worker_name(role: str) -> str:
    """How a worker of this process names itself in ``lease_owner``: ``host:pid:role``."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


class LeaseLost(Exception):
    """The worker no longer holds the work (taken over elsewhere, or it left the state held)."""


@dataclass(frozen=True, slots=True)
class Renewal:
    """What one renewal found: whether the row is still ours, and who asked for a cancel."""

    held: bool
    cancel_requested_by: str | None = None


Renew = Callable[[], Awaitable[Renewal]]


class LeaseKeeper:
    """Renews one lease until stopped; see the module's docstring for what it promises."""

    def __init__(
        self,
        *,
        what: str,
        renew: Renew,
        lease_seconds: float,
        heartbeat_seconds: float,
        on_lost: Callable[[], object],
        on_cancel: Callable[[str], object] | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        self.what = what
        self._renew = renew
        self._lease = lease_seconds
        self._heartbeat = heartbeat_seconds
        self._retry = retry_seconds if retry_seconds is not None else min(1.0, heartbeat_seconds)
        self._on_lost = on_lost
        self._on_cancel = on_cancel
        self._wake = asyncio.Event()
        self.lost = False
        self.cancel_requested_by: str | None = None

    def wake(self) -> None:
        """Renew now rather than at the next heartbeat."""
        self._wake.set()

    async def run(self) -> None:
        """Renew until cancelled, or until the lease is lost (then ``on_lost`` has been called)."""
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()  # the claim itself was the first renewal
        wait = self._heartbeat
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            started = loop.time()
            try:
                # A renewal stuck past the lease's end could not keep it anyway.
                async with asyncio.timeout(max(renewed_at + self._lease - started, 0.1)):
                    renewal = await self._renew()
            except Exception as exc:  # the database is away: the work goes on, the renewal is retried
                if loop.time() - renewed_at >= self._lease:
                    self._lose(f"no renewal succeeded for {self._lease:g} s (last error: {exc})")
                    return
                log.warning("%s: renewing its lease failed, retrying: %s", self.what, exc)
                wait = self._retry
                continue
            if not renewal.held:
                self._lose("another worker holds it now")
                return
            # Measured from the start of the call: the row's expiry was set at some moment
            # inside it, so this never overestimates how long the lease still runs.
            renewed_at, wait = started, self._heartbeat
            if renewal.cancel_requested_by is not None and self.cancel_requested_by is None:
                self.cancel_requested_by = renewal.cancel_requested_by
                if self._on_cancel is not None:
                    self._on_cancel(renewal.cancel_requested_by)

    def _lose(self, why: str) -> None:
        self.lost = True
        log.warning("%s: lease lost (%s); stopping its work", self.what, why)
        self._on_lost()

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[LeaseKeeper]:
        """``async with keeper.kept():`` renews in the background for as long as the block runs."""
        task = asyncio.create_task(self.run(), name=f"lease: {self.what}")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
