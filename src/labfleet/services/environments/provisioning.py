"""Deploying, booting and tearing down an environment on its target (R5, R6).

The provisioner keeps the environment's row (its status, its steps) and hands the device
work to the target of the environment's kind (``targets/``): every step reaches a device
with no transaction open and records what it did in a short transaction of its own, so a
process that dies leaves a row that says what to clean up.

A failure is a ``ProvisionFailed``; whether the resource is to blame is decided by a
health check of it (``check_resource``), recorded as the periodic checks record theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.models.environments import BOARD, ENV_PROVISIONING, ENV_READY, QEMU
from labfleet.hw.ssh import SshPool
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts.service import Store
from labfleet.services.core.events import EventBus
from labfleet.services.environments import service as environments
from labfleet.services.environments.policy import ProvisionPolicy
from labfleet.services.environments.record import EnvRecord
from labfleet.services.environments.targets.base import Boot, Console, ProvisionFailed, Say, Target, quiet
from labfleet.services.environments.targets.board import BoardTarget
from labfleet.services.environments.targets.qemu import QemuTarget
from labfleet.services.flashing.service import FlashPolicy
from labfleet.services.health.boards import BoardProbe
from labfleet.services.health.hosts import HostProbe
from labfleet.services.power.access import Hardware
from labfleet.services.power.service import DEFAULT_BOOT_PATTERN, PowerPolicy

__all__ = ["ProvisionFailed", "ProvisionPolicy", "Provisioner", "device_targets"]


def device_targets(
    *,
    record: EnvRecord,
    store: Store,
    secrets: SecretBox,
    pool: SshPool,
    hardware: Hardware,
    host_probe: HostProbe,
    board_probe: BoardProbe,
    policy: ProvisionPolicy = ProvisionPolicy(),
    power_policy: PowerPolicy = PowerPolicy(),
    flash_policy: FlashPolicy = FlashPolicy(),
) -> dict[str, Target]:
    """The real targets, by environment kind."""
    return {
        QEMU: QemuTarget(
            record=record, store=store, secrets=secrets, pool=pool, probe=host_probe, policy=policy
        ),
        BOARD: BoardTarget(
            record=record,
            secrets=secrets,
            hardware=hardware,
            probe=board_probe,
            policy=policy,
            power_policy=power_policy,
            flash_policy=flash_policy,
        ),
    }


class Provisioner:
    """Deploy, boot, console and teardown of environments, each on the target of its kind."""

    def __init__(self, *, record: EnvRecord, targets: Mapping[str, Target]) -> None:
        self.record = record
        self.targets = targets

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.record.sessions

    @property
    def bus(self) -> EventBus | None:
        return self.record.bus

    async def target(self, env_id: int) -> Target:
        async with self.sessions() as session:
            kind = (await self.record.load(session, env_id)).kind
        return self.targets[kind]

    async def deploy(self, env_id: int, say: Say = quiet) -> None:
        async with self.sessions() as session:
            env = await self.record.load(session, env_id)
            kind, attempt = env.kind, env.attempt
        await self.record.set(env_id, status=ENV_PROVISIONING, attempt=attempt + 1)
        await self.targets[kind].deploy(env_id, say)

    async def boot(self, env_id: int, say: Say = quiet, console_log: Say = quiet) -> None:
        async with self.sessions() as session:
            env = await self.record.load(session, env_id)
            kind, boot = env.kind, dict(env.request.get("boot") or {})
        wanted = Boot(
            pattern=boot.get("pattern") or DEFAULT_BOOT_PATTERN, timeout_s=float(boot.get("timeout_s") or 300)
        )
        await self.targets[kind].boot(env_id, wanted, say, console_log)
        await self.record.set(
            env_id, status=ENV_READY, ready_at=utcnow(), error=None, step=("boot", "succeeded")
        )

    async def console(self, env_id: int, log: Callable[[bytes], None] | None = None) -> Console:
        """The environment's console, not yet open."""
        return await (await self.target(env_id)).console(env_id, log)

    async def resource_id(self, env_id: int) -> int:
        """The id of the host or board the environment is placed on."""
        async with self.sessions() as session:
            env = await self.record.load(session, env_id)
            return env.host_id or env.board_id or 0

    async def check_resource(self, env_id: int, say: Say = quiet) -> bool:
        """A health check of the environment's host or board; whether it passed."""
        return await (await self.target(env_id)).check(env_id, say)

    async def teardown(self, env_id: int, say: Say = quiet, *, reason: str, error: str | None = None) -> None:
        """Remove what was deployed and give back what was held; safe to repeat. With ``error``
        the environment ends ``failed`` with it, in the same write that says it holds nothing."""
        # What cannot be reached is said; what the environment held is given back regardless.
        await (await self.target(env_id)).teardown(env_id, say)
        async with self.sessions() as session:
            env = await self.record.load(session, env_id)
            if error is not None:
                environments.mark_failed(env, error)
            await environments.mark_released(session=session, env=env, reason=reason)
            await session.commit()
            environments.announce(self.bus, env)
        say(f"environment #{env_id} released ({reason})")
