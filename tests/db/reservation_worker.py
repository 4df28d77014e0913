"""A process that reserves and releases at random against one database, for property 20.

Writes one line per operation to its result file: ``ok <id>``, ``refused <reason>`` or
``released <id>``, and, after each of its operations, the usage it then sees committed
(``seen host <id> <vcpus> <memory>`` / ``seen board <id> <holders>``), so that an
over-commit visible to anyone at any of those moments is caught.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from sqlalchemy import func, select

from labfleet.db.base import utcnow
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Reservation
from labfleet.db.repositories import reservations as repo
from labfleet.errors import Conflict
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.reservations import ReservationCreate
from labfleet.services.reservations import service as reservations


async def _work(url: str, results: Path, seed: int, ops: int, hosts: list[int], boards: list[int]) -> None:
    rng = random.Random(seed)
    actor = Actor(name=f"worker-{seed}", role=Role.operator)
    engine = create_engine(url)
    sessions = session_factory(engine)
    mine: list[int] = []
    try:
        with results.open("a") as out:
            for _ in range(ops):
                kind = rng.random()
                async with sessions() as session:
                    try:
                        if kind < 0.25 and mine:
                            ident = mine.pop(rng.randrange(len(mine)))
                            await reservations.release(session=session, actor=actor, ident=ident)
                            line = f"released {ident}"
                        elif kind < 0.6:
                            data = ReservationCreate(
                                host_id=rng.choice(hosts),
                                vcpus=rng.randint(1, 4),
                                memory_mb=rng.choice([512, 1024, 2048, 4096]),
                                purpose="property 20",
                            )
                            r = await reservations.reserve(session=session, actor=actor, data=data)
                            mine.append(r.id)
                            line = f"ok {r.id}"
                        else:
                            data = ReservationCreate(board_id=rng.choice(boards), purpose="property 20")
                            r = await reservations.reserve(session=session, actor=actor, data=data)
                            mine.append(r.id)
                            line = f"ok {r.id}"
                        await session.commit()
                    except Conflict as exc:
                        await session.rollback()
                        line = f"refused {exc.message}"
                out.write(line + "\n")
                async with sessions() as session:
                    now = utcnow()
                    for h in hosts:
                        used = await repo.host_usage(session, h, now)
                        out.write(f"seen host {h} {used.vcpus} {used.memory_mb}\n")
                    for b in boards:
                        n = await session.scalar(
                            select(func.count()).where(Reservation.board_id == b, repo.active(now))
                        )
                        out.write(f"seen board {b} {n}\n")
                out.flush()
    finally:
        await engine.dispose()


def run(url: str, results: str, go: str, seed: int, ops: int, hosts: list[int], boards: list[int]) -> None:
    """Say ready, wait for the start signal (all workers start together), then work."""
    Path(results).write_text("ready\n")
    while not Path(go).exists():
        time.sleep(0.01)
    asyncio.run(_work(url, Path(results), seed, ops, hosts, boards))


def wait_ready(paths: list[Path], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() and p.read_text().startswith("ready") for p in paths):
        if time.monotonic() > deadline:
            raise TimeoutError("the workers did not start")
        time.sleep(0.05)
