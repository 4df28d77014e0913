"""The lease keeper's rules, on a renewal that the test scripts (the workers' own tests,
``tests/engine/test_leases.py``, run them on a real database).

Validates: 16.4, 17.4
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from labfleet.services.core.leases import LeaseKeeper, Renewal, worker_name


class Renewals:
    """Answers each renewal from a script: a Renewal, or an exception to raise."""

    def __init__(self, answer: Callable[[int], Renewal | Exception]) -> None:
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> Renewal:
        self.calls += 1
        got = self.answer(self.calls)
        if isinstance(got, Exception):
            raise got
        return got


def keeper(renewals: Renewals, lost: list[str], cancels: list[str], lease: float = 0.5) -> LeaseKeeper:
    return LeaseKeeper(
        what="test work",
        renew=renewals,
        lease_seconds=lease,
        heartbeat_seconds=0.05,
        retry_seconds=0.02,
        on_lost=lambda: lost.append("lost"),
        on_cancel=cancels.append,
    )


async def test_a_keeper_renews_until_stopped() -> None:
    renewals, lost, cancels = Renewals(lambda n: Renewal(held=True)), [], []
    async with keeper(renewals, lost, cancels).kept():
        await asyncio.sleep(0.3)
    assert renewals.calls >= 3
    assert lost == [] and cancels == []


async def test_failed_renewals_shorter_than_the_lease_keep_it() -> None:
    renewals, lost, cancels = Renewals(lambda n: OSError("away") if n <= 5 else Renewal(held=True)), [], []
    async with keeper(renewals, lost, cancels, lease=1.0).kept():
        await asyncio.sleep(0.4)
    assert renewals.calls > 6  # retried, then renewed again
    assert lost == []


async def test_no_renewal_for_the_whole_lease_loses_it_once() -> None:
    renewals, lost, cancels = Renewals(lambda n: OSError("away")), [], []
    k = keeper(renewals, lost, cancels, lease=0.3)
    await asyncio.wait_for(k.run(), 2)  # returns by itself once lost
    assert lost == ["lost"] and k.lost


async def test_a_renewal_that_hangs_counts_as_failed() -> None:
    async def hang() -> Renewal:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    lost: list[str] = []
    k = LeaseKeeper(
        what="t", renew=hang, lease_seconds=0.3, heartbeat_seconds=0.05, on_lost=lambda: lost.append("x")
    )
    await asyncio.wait_for(k.run(), 2)
    assert lost == ["x"]


async def test_a_row_held_by_another_worker_is_lost_at_once() -> None:
    renewals, lost, cancels = Renewals(lambda n: Renewal(held=n < 3)), [], []
    k = keeper(renewals, lost, cancels, lease=30)
    await asyncio.wait_for(k.run(), 2)
    assert (renewals.calls, lost) == (3, ["lost"])


async def test_a_cancel_is_surfaced_once_and_renewing_goes_on() -> None:
    renewals = Renewals(lambda n: Renewal(held=True, cancel_requested_by="ana" if n >= 2 else None))
    lost: list[str] = []
    cancels: list[str] = []
    async with keeper(renewals, lost, cancels).kept():
        await asyncio.sleep(0.3)
    assert cancels == ["ana"]
    assert renewals.calls >= 4 and lost == []


async def test_a_wake_renews_at_once() -> None:
    renewals = Renewals(lambda n: Renewal(held=True))
    k = LeaseKeeper(what="t", renew=renewals, lease_seconds=60, heartbeat_seconds=30, on_lost=lambda: None)
    async with k.kept():
        await asyncio.sleep(0.05)
        assert renewals.calls == 0
        k.wake()
        await asyncio.sleep(0.05)
        assert renewals.calls == 1


def test_a_worker_name_says_host_process_and_role() -> None:
    host, pid, role = worker_name("environments").split(":")
    assert host and int(pid) > 0 and role == "environments"
