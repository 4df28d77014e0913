"""Provisioning that moves to another resource when the one in use is to blame (property 24).

A deploy or boot that fails is followed by a health check of the host or board, recorded
as the periodic checks record theirs. Passed: the artifacts or the boot settings are at
fault, and moving would not help. Failed: the environment is torn down and, unless the
target was named or enough resources failed already, made again on another one that can
take it (the ones that failed skipped).
"""

from __future__ import annotations

from typing import Protocol

from labfleet.errors import LabfleetError
from labfleet.services.environments.targets.base import ProvisionFailed, Say


class GaveUp(LabfleetError):
    """Provisioning failed, and no other resource is to be tried."""


class Placement(Protocol):
    """The one who wants the environment: told where it is, asked for another."""

    async def using(self, env_id: int) -> None:
        """Provisioning on ``env_id`` starts."""
        ...

    async def failed(self, resource: str) -> None:
        """``resource`` failed its health check after provisioning failed on it."""
        ...

    async def another(self, skip: list[int]) -> int:
        """A new environment on a resource other than ``skip``; ``LabfleetError`` when none can."""
        ...


class Provisions(Protocol):
    """What provisioning needs (``provisioning.Provisioner``)."""

    async def deploy(self, env_id: int, say: Say) -> None: ...

    async def boot(self, env_id: int, say: Say, console_log: Say) -> None: ...

    async def check_resource(self, env_id: int, say: Say) -> bool: ...

    async def teardown(self, env_id: int, say: Say, *, reason: str) -> None: ...

    async def resource_id(self, env_id: int) -> int: ...


async def provision(
    provisioner: Provisions,
    env_id: int,
    placement: Placement,
    *,
    deploy: bool,
    boot: bool,
    may_move: bool,
    max_resources: int,
    say: Say,
    console_log: Say,
) -> int:
    """Deploy and/or boot ``env_id``, moving as above; the environment it ended on."""
    failed: list[int] = []
    while True:
        await placement.using(env_id)
        try:
            if deploy:
                await provisioner.deploy(env_id, say)
            if boot:
                await provisioner.boot(env_id, say, console_log)
            return env_id
        except ProvisionFailed as exc:
            healthy = await provisioner.check_resource(env_id, say)
            resource = await provisioner.resource_id(env_id)
            await provisioner.teardown(env_id, say, reason=f"provisioning failed: {exc.message}")
            if healthy:
                raise GaveUp(
                    f"{exc.message} ({exc.resource} passed its health check: the artifacts or the "
                    "boot settings are at fault)"
                ) from exc
            failed.append(resource)
            await placement.failed(exc.resource)
            if not may_move:
                raise GaveUp(f"{exc.message}; the target was named, so no other is tried") from exc
            if len(failed) >= max_resources:
                raise GaveUp(f"{exc.message}; {len(failed)} resources failed in all") from exc
            say(f"{exc.resource} failed its health check: provisioning on another resource")
            try:
                env_id = await placement.another(failed)
            except LabfleetError as other:
                raise GaveUp(f"{exc.message}; no alternative resource: {other.message}") from exc
            deploy = True
