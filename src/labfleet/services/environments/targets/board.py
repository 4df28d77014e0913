"""A board of the lab.

Deploy: a flash job (written, read back and verified, rolled back to the known-good image on
failure; ``services/flashing/``) run by the flash worker, followed here until it ends. Boot: a
power cycle with the console watched for the boot pattern (``services/power/``); the image
that booted becomes the board's known-good one. Nothing is left on a board to tear down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from labfleet.db.models import Board, Environment
from labfleet.db.models.flashing import FINAL as FLASH_FINAL
from labfleet.db.models.flashing import SUCCEEDED as FLASH_SUCCEEDED
from labfleet.db.models.power import SUCCEEDED as POWER_SUCCEEDED
from labfleet.errors import DeviceError
from labfleet.hw.console import SerialConsole
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.flashing import FlashRequest
from labfleet.schemas.power import PowerCycleIn
from labfleet.secretbox import SecretBox
from labfleet.services.environments.compatibility import IMAGE_TYPES
from labfleet.services.environments.policy import ProvisionPolicy
from labfleet.services.environments.record import EnvRecord
from labfleet.services.environments.targets.base import Boot, ProvisionFailed, Say, console_at
from labfleet.services.flashing import service as flashing
from labfleet.services.health import boards as board_health
from labfleet.services.health.boards import BoardHealthPolicy, BoardProbe
from labfleet.services.power import service as power
from labfleet.services.power.access import Hardware
from labfleet.services.power.service import PowerPolicy


def _actor(env: Environment) -> Actor:
    # Device work is done on behalf of the environment's owner, who holds its reservation.
    return Actor(name=env.owner, role=Role.operator, team=env.team)


def _image(env: Environment) -> int | None:
    """The artifact the board is flashed with: the first of the image types it has."""
    return next((int(env.artifacts[k]) for k in IMAGE_TYPES if k in env.artifacts), None)


class BoardTarget:
    def __init__(
        self,
        *,
        record: EnvRecord,
        secrets: SecretBox,
        hardware: Hardware,
        probe: BoardProbe,
        policy: ProvisionPolicy = ProvisionPolicy(),
        power_policy: PowerPolicy = PowerPolicy(),
        flash_policy: flashing.FlashPolicy = flashing.FlashPolicy(),
    ) -> None:
        self.record = record
        self.secrets = secrets
        self.hardware = hardware
        self.probe = probe
        self.policy = policy
        self.power_policy = power_policy
        self.flash_policy = flash_policy

    async def _board(self, env_id: int) -> tuple[Environment, Board]:
        async with self.record.sessions() as session:
            env = await self.record.load(session, env_id)
            assert env.board_id is not None
            board = await session.get(Board, env.board_id)
            assert board is not None
            return env, board

    # -- deploy

    async def deploy(self, env_id: int, say: Say) -> None:
        env, board = await self._board(env_id)
        name, image = board.name, _image(env)
        assert image is not None
        async with self.record.sessions() as session:
            job = await flashing.request_flash(
                session=session,
                actor=_actor(env),
                board_id=board.id,
                data=FlashRequest(artifact_id=image, boot_check=False),
                policy=self.flash_policy,
            )
            await session.commit()
            job_id = job.id
        say(f"flashing board {name} with artifact {image} (flash job #{job_id}): write and verify")
        await self.record.step(env_id, "flash", "running", flash_job=job_id)
        status, error = await self._follow_flash(name, job_id, say)
        if status != FLASH_SUCCEEDED:
            await self.record.step(env_id, "flash", status, flash_job=job_id, error=error)
            raise ProvisionFailed(f"board {name}: flash job #{job_id} {status}: {error}", resource=name)
        await self.record.step(env_id, "flash", "succeeded", flash_job=job_id)
        say(f"board {name} flashed and verified (flash job #{job_id})")

    async def _follow_flash(self, name: str, job_id: int, say: Say) -> tuple[str, str | None]:
        """The flash job's end: its status and error; its phases said as they change."""
        last_phase = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.flash_timeout_s
        while True:
            async with self.record.sessions() as session:
                job = await flashing.get(session=session, job_id=job_id)
                await session.refresh(job)
                status, phase, error = job.status, job.phase, job.error
            if phase != last_phase and phase:
                say(f"  flash job #{job_id}: {phase}")
                last_phase = phase
            if status in FLASH_FINAL:
                return status, error
            if loop.time() > deadline:
                raise ProvisionFailed(
                    f"board {name}: flash job #{job_id} unfinished after {self.policy.flash_timeout_s:g} s",
                    resource=name,
                )
            await asyncio.sleep(self.policy.poll_s)

    # -- boot

    async def boot(self, env_id: int, boot: Boot, say: Say, console_log: Say) -> None:
        env, board = await self._board(env_id)
        name, image = board.name, _image(env)
        say(
            f"power-cycling board {name}; watching its console for {boot.pattern!r} "
            f"(up to {boot.timeout_s:g} s)"
        )
        async with self.record.sessions() as session:
            action = await power.cycle(
                session=session,
                actor=_actor(env),
                hardware=self.hardware,
                board_id=board.id,
                policy=self.power_policy,
                options=PowerCycleIn(boot_timeout_s=boot.timeout_s, retries=1, boot_pattern=boot.pattern),
                bus=self.record.bus,
            )
            ok, error, action_id = action.status == POWER_SUCCEEDED, action.error, action.id
            await session.commit()
        if not ok:
            await self.record.step(env_id, "boot", "failed", power_action=action_id, error=error)
            raise ProvisionFailed(
                f"board {name} did not boot (power action #{action_id}): {error}", resource=name
            )
        say(f"board {name} booted (power action #{action_id})")
        if image is not None:
            async with self.record.sessions() as session:
                await flashing.record_known_good(session=session, board_id=board.id, artifact_id=image)
                await session.commit()

    # -- console, check, teardown

    async def console(self, env_id: int, log: Callable[[bytes], None] | None = None) -> SerialConsole:
        _, board = await self._board(env_id)
        if board.console_url is None:
            raise DeviceError(f"environment #{env_id}: board {board.name} has no console")
        return console_at(board.console_url, self.policy, env_id, log)

    async def check(self, env_id: int, say: Say) -> bool:
        async with self.record.sessions() as session:
            env = await self.record.load(session, env_id)
            if env.board_id is None:
                return True
            target = await board_health.target_of(
                session=session, secrets=self.secrets, policy=BoardHealthPolicy(), board_id=env.board_id
            )
        if target is None:
            return True
        reading = await board_health.probe(
            probe=self.probe, target=target, timeout=self.policy.check_timeout_s
        )
        async with self.record.sessions() as session:
            await board_health.record(session=session, reading=reading, policy=BoardHealthPolicy())
            await session.commit()
        say(f"health check of board {target.name}: {'passed' if reading.answered else reading.error}")
        return reading.answered

    async def teardown(self, env_id: int, say: Say) -> None:
        return None  # the next flash writes over what was deployed
