"""An environment's row as its device steps write it: each write a short transaction of its own,
so a process that dies leaves a row that says what to clean up."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models import Environment
from labfleet.services.core.events import EventBus
from labfleet.services.environments import service as environments


class EnvRecord:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: EventBus | None) -> None:
        self.sessions = sessions
        self.bus = bus

    async def load(self, session: AsyncSession, env_id: int) -> Environment:
        return await environments.get(session=session, ident=env_id, refresh=True)

    async def step(self, env_id: int, step: str, status: str, **extra: Any) -> None:
        async with self.sessions() as session:
            env = await self.load(session, env_id)
            environments.add_step(env, step, status, **extra)
            await session.commit()

    async def set(self, env_id: int, *, step: tuple[str, str] | None = None, **values: Any) -> Environment:
        """Set ``values`` (and add ``step``, with its status, in the same write) and announce it."""
        async with self.sessions() as session:
            env = await self.load(session, env_id)
            if step is not None:
                environments.add_step(env, *step)
            for key, value in values.items():
                setattr(env, key, value)
            await session.commit()
            environments.announce(self.bus, env)
            return env
