"""Reservations per second with 10,000 boards and 1,000 hosts, SQLite and PostgreSQL, and with
competing processes on PostgreSQL.

    .venv/bin/python -m benchmarks.reservations [--boards 10000] [--hosts 1000] [--ops 3000]
                                                [--workers 4] [--pg-url URL] [--no-pg]

Each operation is one committed transaction through ``services.reservations.reserve`` as the
API runs it: lock the host or board row, release what expired there, count what is held,
insert, audit. Half the operations reserve a random board, half 1-4 vCPUs and 1-4 GiB of a
random host (64 cores, 256 GiB), so few are refused; refusals (a board already held) are
counted apart. Every run starts from a fresh database (SQLite file in WAL mode; a scratch
PostgreSQL database) filled with the inventory; the rate is operations / wall-clock time
from the start signal until every worker is done. Afterwards the invariants are checked:
no host over capacity, no board held twice.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from benchmarks.procs import run_together
from benchmarks.scratch import migrated_pg, migrated_sqlite
from labfleet.config import normalize_database_url
from labfleet.db.base import utcnow
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Board, Host, Reservation
from labfleet.db.repositories import reservations as repo
from labfleet.errors import Conflict
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.reservations import ReservationCreate
from labfleet.services.reservations import service as reservations

DEFAULT_PG = os.environ.get("LABFLEET_TEST_PG_URL", "postgresql://labfleet:labfleet@127.0.0.1:5432/postgres")
CORES, MEMORY = 64, 256 * 1024


async def fill(url: str, boards: int, hosts: int) -> tuple[list[int], list[int]]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            for start in range(0, hosts, 1000):
                await session.execute(
                    insert(Host),
                    [
                        {
                            "hostname": f"kvm-{i}",
                            "address": f"kvm-{i}.lab",
                            "ssh_user": "root",
                            "libvirt_uri": f"qemu+ssh://root@kvm-{i}.lab/system",
                            "cpu_cores": CORES,
                            "memory_mb": MEMORY,
                            "storage_gb": 2000.0,
                        }
                        for i in range(start, min(start + 1000, hosts))
                    ],
                )
            for start in range(0, boards, 1000):
                await session.execute(
                    insert(Board),
                    [
                        {
                            "name": f"board-{i}",
                            "board_type": "rpi4",
                            "architecture": "arm64",
                            "serial_number": f"sn-{i}",
                        }
                        for i in range(start, min(start + 1000, boards))
                    ],
                )
            await session.commit()
            host_ids = list(await session.scalars(select(Host.id)))
            board_ids = list(await session.scalars(select(Board.id)))
            return host_ids, board_ids
    finally:
        await engine.dispose()


async def work(url: str, ops: int, seed: int, hosts: list[int], boards: list[int]) -> tuple[int, int]:
    """``ops`` reservations; (reserved, refused)."""
    rng = random.Random(seed)
    actor = Actor(name=f"bench-{seed}", role=Role.operator)
    engine = create_engine(url)
    sessions = session_factory(engine)
    done = refused = 0
    try:
        for _ in range(ops):
            if rng.random() < 0.5:
                data = ReservationCreate(board_id=rng.choice(boards), purpose="bench")
            else:
                data = ReservationCreate(
                    host_id=rng.choice(hosts),
                    vcpus=rng.randint(1, 4),
                    memory_mb=1024 * rng.randint(1, 4),
                    purpose="bench",
                )
            async with sessions() as session:
                try:
                    await reservations.reserve(session=session, actor=actor, data=data)
                    await session.commit()
                    done += 1
                except Conflict:
                    await session.rollback()
                    refused += 1
        return done, refused
    finally:
        await engine.dispose()


def _work(url: str, ops: int, seed: int, hosts: list[int], boards: list[int]) -> tuple[int, int]:
    return asyncio.run(work(url, ops, seed, hosts, boards))


async def check(url: str) -> None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            now = utcnow()
            over = [
                h
                for h, u in (await repo.usage_by_host(session, now)).items()
                if u.vcpus > CORES or u.memory_mb > MEMORY
            ]
            twice = await session.scalar(
                select(func.count()).select_from(
                    select(Reservation.board_id)
                    .where(Reservation.board_id.is_not(None), repo.active(now))
                    .group_by(Reservation.board_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
    finally:
        await engine.dispose()
    assert not over, f"hosts over capacity: {over}"
    assert twice == 0, f"{twice} boards held twice"


def measure(url: str, args: argparse.Namespace, workers: int, scratch: Path) -> tuple[float, int, int]:
    hosts, boards = asyncio.run(fill(url, args.boards, args.hosts))
    per = args.ops // workers
    if workers == 1:
        t0 = time.perf_counter()
        results = [asyncio.run(work(url, per, 1, hosts, boards))]
        elapsed = time.perf_counter() - t0
    else:
        arg_sets = [(url, per, n + 1, hosts, boards) for n in range(workers)]
        elapsed, results = run_together(_work, arg_sets, scratch)
    asyncio.run(check(url))
    done = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    return (done + refused) / elapsed, done, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--ops", type=int, default=3_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    admin = normalize_database_url(args.pg_url)
    print(
        f"reservations: {args.boards} boards, {args.hosts} hosts, {args.ops} operations, one transaction each"
    )
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        plans = [("SQLite", 1)]
        if not args.no_pg:
            plans += [("PostgreSQL", 1), ("PostgreSQL", args.workers)]
        for backend, workers in plans:
            db = migrated_sqlite(scratch, "reservations") if backend == "SQLite" else migrated_pg(admin)
            with db as url:
                rate, done, refused = measure(url, args, workers, scratch)
            label = "1 process" if workers == 1 else f"{workers} processes"
            print(f"  {backend:<10} {label:<12} {rate:8.0f} reservations/s  ({done} held, {refused} refused)")


if __name__ == "__main__":
    main()
