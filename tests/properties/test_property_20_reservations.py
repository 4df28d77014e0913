"""Property 20: reservations stay consistent under concurrent requests from several processes.

Validates: 11.5
"""

from __future__ import annotations

import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Board, Host
from labfleet.errors import Conflict
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.query import ListQuery
from labfleet.schemas.reservations import ReservationCreate
from labfleet.services.reservations import service as reservations
from tests.db import reservation_worker
from tests.helpers import processes

CORES, MEMORY = 8, 8192


async def _inventory(session: AsyncSession, tag: str) -> tuple[list[int], list[int]]:
    hosts = [
        Host(
            hostname=f"h{tag}-{i}",
            address=f"h{tag}-{i}.lab",
            ssh_user="root",
            libvirt_uri="qemu:///system",
            cpu_cores=CORES,
            memory_mb=MEMORY,
            storage_gb=100.0,
            labels=[],
        )
        for i in range(2)
    ]
    boards = [
        Board(
            name=f"b{tag}-{i}",
            board_type="rpi4",
            architecture="arm64",
            serial_number=f"s{tag}-{i}",
            labels=[],
            peripherals=[],
        )
        for i in range(3)
    ]
    session.add_all([*hosts, *boards])
    await session.commit()
    return [h.id for h in hosts], [b.id for b in boards]


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**31), workers=st.sampled_from([3, 4]), ops=st.integers(15, 30))
async def test_property_20_concurrent_reservations_never_over_commit_or_double_book(
    fresh_db_url: str, tmp_path: Path, seed: int, workers: int, ops: int
) -> None:
    run = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    run.mkdir()
    engine = create_engine(fresh_db_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            hosts, boards = await _inventory(session, run.name)
        go = run / "go"
        results = [run / f"worker-{n}.txt" for n in range(workers)]
        ctx = processes()
        procs = [
            ctx.Process(
                target=reservation_worker.run,
                args=(fresh_db_url, str(r), str(go), seed + n, ops, hosts, boards),
            )
            for n, r in enumerate(results)
        ]
        for p in procs:
            p.start()
        try:
            reservation_worker.wait_ready(results)
            go.touch()
            for p in procs:
                p.join(timeout=180)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
        assert [p.exitcode for p in procs] == [0] * workers

        lines = [line.split() for r in results for line in r.read_text().splitlines()[1:]]
        outcomes = [line[0] for line in lines if line[0] != "seen"]
        assert len(outcomes) == workers * ops  # every operation answered, none lost
        assert "ok" in outcomes
        # What anyone saw committed, after any operation: never over capacity, never two holders.
        for line in lines:
            if line[:2] == ["seen", "host"]:
                assert int(line[3]) <= CORES
                assert int(line[4]) <= MEMORY
            elif line[:2] == ["seen", "board"]:
                assert int(line[3]) <= 1

        # Release returns exactly what was reserved: with everything released, each host holds
        # its whole capacity again, and each board a holder again.
        async with sessions() as session:
            _, held = await reservations.search(session=session, query=ListQuery(limit=1000))
            for r in held:
                await reservations.release(session=session, actor=SYSTEM, ident=r.id)
            await session.commit()
        async with sessions() as session:
            for h in hosts:
                await reservations.reserve(
                    session=session,
                    actor=SYSTEM,
                    data=ReservationCreate(host_id=h, vcpus=CORES, memory_mb=MEMORY, purpose="all of it"),
                )
                try:
                    await reservations.reserve(
                        session=session,
                        actor=SYSTEM,
                        data=ReservationCreate(host_id=h, vcpus=1, purpose="one more"),
                    )
                except Conflict:
                    pass
                else:
                    raise AssertionError("a full host took one more vCPU")
            for b in boards:
                await reservations.reserve(
                    session=session, actor=SYSTEM, data=ReservationCreate(board_id=b, purpose="again")
                )
            await session.commit()
    finally:
        await engine.dispose()
