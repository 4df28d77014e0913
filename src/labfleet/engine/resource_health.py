"""Health checks of QEMU hosts and boards, every ``interval`` seconds (R9, R10).

As for build servers (``engine.health``): each round claims the resources due and commits
at once (so that other processes skip them), then checks them at most ``concurrency`` at
a time; the device is asked with no transaction open, and each outcome is recorded and
committed in a transaction of its own, then announced on the resource's topic
(``host:{id}``, ``board:{id}``) when something changed. Hosts and boards run as separate
loops: a board's recovery (a power cycle watched for minutes) never delays a host's check.

A board unreachable ``failure_limit`` times in a row is power-cycled once
(``services.health.boards.recover``) and asked again at once: the recovery and the second
answer are part of its check. A board without a console is asked again until its boot
timeout has passed, since nothing watched it boot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.batches import probe_then_record
from labfleet.engine.loops import every
from labfleet.schemas.enums import ResourceKind
from labfleet.schemas.settings import LabSettings
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.health import boards as board_health
from labfleet.services.health import hosts as host_health
from labfleet.services.health import tuning
from labfleet.services.health.boards import BoardHealthPolicy, BoardProbe
from labfleet.services.health.hosts import HostHealthPolicy, HostProbe
from labfleet.services.power.access import Hardware
from labfleet.services.power.service import PowerPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
# How often a board without a console is asked again after its recovery power cycle.
REPROBE_EVERY_S = 5.0


class HealthProbe(HostProbe, BoardProbe, Protocol):
    """Everything the checks ask devices: a host's usage, a board's answer and sensors."""


class ResourceHealthMonitor:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        secrets: SecretBox,
        hosts: HostProbe,
        boards: BoardProbe,
        hardware: Hardware | None,
        host_policy: HostHealthPolicy,
        board_policy: BoardHealthPolicy,
        power_policy: PowerPolicy,
        interval_s: float = 60.0,
        concurrency: int = host_health.MAX_CONCURRENT_CHECKS,
        lab: Callable[[], LabSettings] | None = None,
    ) -> None:
        """``lab``: the lab settings now (``SettingsView.current``); when given, they decide each
        kind's interval and each resource's thresholds, read again for every round."""
        self._sessions = sessions
        self._lab = lab
        self._bus = bus
        self._secrets = secrets
        self._hosts = hosts
        self._boards = boards
        self._hardware = hardware
        self.host_policy = host_policy
        if hardware is None:
            # No power to act on: an unreachable board goes offline without a recovery cycle.
            board_policy = replace(board_policy, recover=False, read_power_state=False)
        self.board_policy = board_policy
        self.power_policy = power_policy
        self._interval = interval_s
        self._concurrency = concurrency

    def interval(self, kind: ResourceKind) -> float:
        return self._interval if self._lab is None else tuning.interval(self._lab(), kind)

    def _next_round(self, kind: ResourceKind) -> float:
        return self._interval if self._lab is None else tuning.next_round(self._lab(), kind)

    def _host_policy(self, host_id: int) -> HostHealthPolicy:
        return self.host_policy if self._lab is None else tuning.host(self.host_policy, self._lab(), host_id)

    def _board_policy(self, board_id: int) -> BoardHealthPolicy:
        return (
            self.board_policy if self._lab is None else tuning.board(self.board_policy, self._lab(), board_id)
        )

    def _board_target(self, target: board_health.Target) -> board_health.Target:
        if self._lab is None:
            return target
        policy = self._board_policy(target.board_id)
        return replace(
            target, warning_c=policy.temperature_warning_c, critical_c=policy.temperature_critical_c
        )

    async def run_hosts(self, *, first: float | None = None) -> None:
        hosts = ResourceKind.host
        await every(
            lambda: self._next_round(hosts),
            "host health checks",
            self.check_hosts,
            first=self.interval(hosts) if first is None else first,
        )

    async def run_boards(self, *, first: float | None = None) -> None:
        boards = ResourceKind.board
        await every(
            lambda: self._next_round(boards),
            "board health checks",
            self.check_boards,
            first=self.interval(boards) if first is None else first,
        )

    # -- hosts

    async def check_hosts(self) -> list[host_health.CheckResult]:
        """One round over the hosts due (``engine/batches.py``); what each check found."""
        async with self._sessions() as session:
            targets = await host_health.due(session=session, min_gap=self.interval(ResourceKind.host) / 2)
            await session.commit()

        async def probe(target: host_health.Target) -> host_health.Probe:
            timeout = self._host_policy(target.host_id).timeout_seconds
            return await host_health.probe(probe=self._hosts, target=target, timeout=timeout)

        async def record(session: AsyncSession, found: host_health.Probe) -> host_health.CheckResult | None:
            policy = self._host_policy(found.target.host_id)
            return await host_health.record(session=session, probe=found, policy=policy)

        return await probe_then_record(
            targets,
            sessions=self._sessions,
            probe=probe,
            record=record,
            after=self._host_checked,
            name=lambda t: f"host {t.hostname}",
            concurrency=self._concurrency,
        )

    async def _host_checked(self, result: host_health.CheckResult) -> None:
        if result.changed_status or result.raised or result.resolved:
            self._bus.publish(
                f"host:{result.host_id}",
                {
                    "type": "health",
                    "status": result.status,
                    "answered": result.answered,
                    "failures": result.failures,
                    "error": result.error,
                    "raised": list(result.raised),
                    "resolved": list(result.resolved),
                },
            )
        _log("host", result.hostname, result.changed_status, result.previous_status, result.status, result)

    async def prune_samples(self) -> int:
        """Utilization samples past the retention deleted; how many."""
        async with self._sessions() as session:
            policy = self._host_policy(0)
            removed = await host_health.prune(session=session, policy=policy)
            await session.commit()
        if removed:
            log.info("pruned %d host utilization samples older than %s", removed, policy.sample_retention)
        return removed

    # -- boards

    async def check_boards(self) -> list[board_health.CheckResult]:
        """One round over the boards due; what each check found (after its recovery, if one was made)."""
        async with self._sessions() as session:
            targets = await board_health.due(
                session=session,
                secrets=self._secrets,
                policy=self.board_policy,
                min_gap=self.interval(ResourceKind.board) / 2,
            )
            await session.commit()
        targets = [self._board_target(t) for t in targets]
        return await self._gather(targets, self.check_board, lambda t: f"board {t.name}")

    async def check_board(self, target: board_health.Target) -> board_health.CheckResult | None:
        result = await self._check_board(target)
        if result is None or not result.needs_recovery or self._hardware is None:
            return result
        async with self._sessions() as session:
            recovery = await board_health.recover(
                session=session,
                hardware=self._hardware,
                target=target,
                policy=self.power_policy,
                bus=self._bus,
            )
        if recovery is None:
            log.info("board %s: no recovery this round (busy, or another process is on it)", target.name)
            return result
        log.warning(
            "board %s: unreachable %d times, power-cycled to recover it (%s)",
            target.name,
            result.failures,
            "no cycle: " + (recovery.error or "")
            if recovery.action is None
            else f"action #{recovery.action.id}",
        )
        patience = 0.0
        if target.access is not None and target.access.console_url is None:
            # Nothing watched it boot: give it its boot time to answer.
            patience = self.power_policy.boot_timeout_s
        return await self._check_board(target, recovery=recovery, patience=patience, previous=result)

    async def _check_board(
        self,
        target: board_health.Target,
        *,
        recovery: board_health.Recovery | None = None,
        patience: float = 0.0,
        previous: board_health.CheckResult | None = None,
    ) -> board_health.CheckResult | None:
        timeout = self.board_policy.timeout_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        reading = await board_health.probe(probe=self._boards, target=target, timeout=timeout)
        while not reading.answered and loop.time() < deadline:
            await asyncio.sleep(min(REPROBE_EVERY_S, max(deadline - loop.time(), 0.0)))
            reading = await board_health.probe(probe=self._boards, target=target, timeout=timeout)
        if self._hardware is not None and self.board_policy.read_power_state and target.powered:
            async with self._sessions() as session:
                state = await board_health.power_state(
                    session=session,
                    hardware=self._hardware,
                    target=target,
                    policy=self.power_policy,
                    bus=self._bus,
                )
            if state is not None:
                reading = replace(reading, power_state=state)
        async with self._sessions() as session:
            result = await board_health.record(
                session=session,
                reading=reading,
                policy=self._board_policy(target.board_id),
                recovery=recovery,
            )
            await session.commit()
        if result is None:
            return None
        before = previous.previous_status if previous is not None else result.previous_status
        changed = result.status != before
        if changed or result.raised or result.resolved or recovery is not None:
            self._bus.publish(
                f"board:{result.board_id}",
                {
                    "type": "health",
                    "status": result.status,
                    "answered": result.answered,
                    "failures": result.failures,
                    "error": result.error,
                    "temperature_c": result.temperature_c,
                    "power_state": result.power_state,
                    "recovery": result.recovery,
                    "raised": list(result.raised),
                    "resolved": list(result.resolved),
                },
            )
        _log("board", result.name, changed, before, result.status, result)
        return result

    # -- both

    async def _gather(
        self, targets: list[T], check: Callable[[T], Awaitable[R | None]], name: Callable[[T], str]
    ) -> list[R]:
        limit = asyncio.Semaphore(self._concurrency)

        async def guarded(target: T) -> R | None:
            async with limit:
                return await check(target)

        outcomes = await asyncio.gather(*(guarded(t) for t in targets), return_exceptions=True)
        results: list[R] = []
        for target, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                log.error("health check of %s failed", name(target), exc_info=outcome)
            elif outcome is not None:
                results.append(outcome)
        return results


def _log(
    kind: str,
    name: str,
    changed: bool,
    before: str,
    after: str,
    result: host_health.CheckResult | board_health.CheckResult,
) -> None:
    if changed:
        log.warning(
            "%s %s: %s -> %s%s", kind, name, before, after, f" ({result.error})" if result.error else ""
        )
    elif not result.answered:
        log.info("%s %s did not answer (%d in a row): %s", kind, name, result.failures, result.error)
