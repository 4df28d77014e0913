"""Two ``EnvironmentWorker`` processes on one PostgreSQL, whose database goes away for a
moment while one of them provisions an environment: the environment is provisioned once, by
the process that claimed it, and nobody tears it down as interrupted.

The outage is real: the database refuses new connections (``CONNECTION LIMIT 0``) and every
open one is terminated, for less than the lease.

Validates: 16.4
"""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Environment
from tests.build_rig import KEY
from tests.conftest import PG_ADMIN_URL, _pg_admin
from tests.engine import environment_process
from tests.engine.test_leases import held, row, standalone


@pytest.fixture
def backend() -> str:
    return "postgresql"  # what several processes share; SQLite has no connections to refuse


async def outage(db: str, seconds: float) -> None:
    await _pg_admin(f'ALTER DATABASE "{db}" CONNECTION LIMIT 0')
    try:
        engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{db}' AND pid <> pg_backend_pid()"
                )
        finally:
            await engine.dispose()
        await asyncio.sleep(seconds)
    finally:
        await _pg_admin(f'ALTER DATABASE "{db}" CONNECTION LIMIT -1')


def unsettled(env: Environment) -> bool:
    return env.status in ("pending", "provisioning") or (
        env.status == "ready" and env.lease_owner is not None
    )


async def test_one_environment_is_provisioned_once_by_two_processes_through_a_database_outage(
    fresh_db_url: str, tmp_path: Path
) -> None:
    engine = create_engine(fresh_db_url)
    rig = SimpleNamespace(sessions=session_factory(engine), repo_url="https://git.lab/lab.git")
    try:
        ident = await standalone(rig, "procs")
    finally:
        await engine.dispose()
    stop = tmp_path / "stop"
    records = {name: tmp_path / f"{name}.txt" for name in ("worker-a", "worker-b")}
    ctx = multiprocessing.get_context("spawn")

    def start(name: str) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(
            target=environment_process.run,
            args=(fresh_db_url, name, KEY, str(records[name]), str(stop), 10.0),
        )
        proc.start()
        return proc

    procs = [start("worker-a")]
    try:
        await asyncio.to_thread(environment_process.wait_for, records["worker-a"], 60.0, "deployed procs-kvm")
        procs.append(start("worker-b"))
        await asyncio.to_thread(environment_process.wait_for, records["worker-b"].with_suffix(".ready"))
        db = make_url(fresh_db_url).database
        assert db is not None
        await outage(db, 1.2)
        engine = create_engine(fresh_db_url)
        rig.sessions = session_factory(engine)
        try:
            async with asyncio.timeout(60):
                # Ready is written, then the lease let go: wait for both. Another process
                # writes them, so there is no event here to wait on, only the row.
                while unsettled(env := await row(rig, Environment, ident)):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            assert (env.status, env.error, env.lease_owner) == ("ready", None, None)
            assert len(await held(rig)) == 1
        finally:
            await engine.dispose()
    finally:
        stop.touch()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    a = records["worker-a"].read_text().splitlines()
    b = records["worker-b"].read_text().splitlines() if records["worker-b"].exists() else []
    assert (a, b) == (["deployed procs-kvm"], [])  # once, by the process that claimed it
