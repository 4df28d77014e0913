"""Moving to another resource when provisioning fails on one that is to blame (property 24),
as rules over a provisioner whose resources behave as each test says.

Validates: 16.4, 11.5
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from labfleet.errors import Unavailable
from labfleet.services.environments import failover
from labfleet.services.environments.targets.base import ProvisionFailed


@dataclass
class Lab:
    """Environment ``n`` is placed on resource ``n``; deploys fail on ``broken``, checks on ``unhealthy``."""

    broken: set[int] = field(default_factory=set)
    unhealthy: set[int] = field(default_factory=set)
    free: list[int] = field(default_factory=list)
    deployed: list[int] = field(default_factory=list)
    booted: list[int] = field(default_factory=list)
    torn_down: list[int] = field(default_factory=list)

    async def deploy(self, env_id: int, say: object) -> None:
        self.deployed.append(env_id)
        if env_id in self.broken:
            raise ProvisionFailed(f"deploying on r{env_id} failed", resource=f"r{env_id}")

    async def boot(self, env_id: int, say: object, console_log: object) -> None:
        self.booted.append(env_id)

    async def check_resource(self, env_id: int, say: object) -> bool:
        return env_id not in self.unhealthy

    async def teardown(self, env_id: int, say: object, *, reason: str) -> None:
        self.torn_down.append(env_id)

    async def resource_id(self, env_id: int) -> int:
        return env_id


@dataclass
class Asker:
    lab: Lab
    used: list[int] = field(default_factory=list)
    failed_on: list[str] = field(default_factory=list)
    skipped: list[list[int]] = field(default_factory=list)

    async def using(self, env_id: int) -> None:
        self.used.append(env_id)

    async def failed(self, resource: str) -> None:
        self.failed_on.append(resource)

    async def another(self, skip: list[int]) -> int:
        self.skipped.append(list(skip))
        choice = next((r for r in self.lab.free if r not in skip), None)
        if choice is None:
            raise Unavailable("no host can take it now", alternatives=[])
        self.lab.free.remove(choice)
        return choice


async def provision(lab: Lab, asker: Asker, *, may_move: bool = True, max_resources: int = 3) -> int:
    return await failover.provision(
        lab,
        1,
        asker,
        deploy=True,
        boot=True,
        may_move=may_move,
        max_resources=max_resources,
        say=lambda _: None,
        console_log=lambda _: None,
    )


async def test_a_resource_that_fails_its_check_is_left_for_another_that_boots() -> None:
    lab = Lab(broken={1}, unhealthy={1}, free=[2, 3])
    asker = Asker(lab)
    assert await provision(lab, asker) == 2
    assert (asker.used, asker.failed_on, asker.skipped) == ([1, 2], ["r1"], [[1]])
    assert (lab.deployed, lab.booted, lab.torn_down) == ([1, 2], [2], [1])


async def test_a_resource_that_passes_its_check_fails_the_artifacts_and_nothing_moves() -> None:
    lab = Lab(broken={1}, free=[2])
    asker = Asker(lab)
    with pytest.raises(failover.GaveUp, match="r1 passed its health check: the artifacts"):
        await provision(lab, asker)
    assert (asker.skipped, lab.torn_down, lab.free) == ([], [1], [2])


async def test_a_named_target_is_not_replaced() -> None:
    lab = Lab(broken={1}, unhealthy={1}, free=[2])
    asker = Asker(lab)
    with pytest.raises(failover.GaveUp, match="the target was named"):
        await provision(lab, asker, may_move=False)
    assert (asker.failed_on, asker.skipped, lab.torn_down) == (["r1"], [], [1])


async def test_it_stops_after_max_resources_each_torn_down_and_skipped_next_time() -> None:
    lab = Lab(broken={1, 2, 3}, unhealthy={1, 2, 3}, free=[2, 3, 4])
    asker = Asker(lab)
    with pytest.raises(failover.GaveUp, match="3 resources failed in all"):
        await provision(lab, asker)
    assert asker.skipped == [[1], [1, 2]]
    assert lab.torn_down == [1, 2, 3]
    assert lab.free == [4]


async def test_no_alternative_ends_it_with_both_reasons() -> None:
    lab = Lab(broken={1}, unhealthy={1}, free=[])
    with pytest.raises(
        failover.GaveUp, match="deploying on r1 failed; no alternative resource: no host can take"
    ):
        await provision(lab, Asker(lab))
    assert lab.torn_down == [1]
