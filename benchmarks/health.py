"""Health checks at lab scale: sweeps of the build server checks over 1,000 SSH endpoints.

    .venv/bin/python -m benchmarks.health [--endpoints 1000] [--concurrency 16 64 256]

Each endpoint is an asyncssh server of this process on its own loopback address
(127.0.x.y), registered as a build server with its host key pinned. A sweep is one
``HealthMonitor.check_all()``: claim every server due, probe each over SSH (the probe
script: CPUs, memory, load, disk, toolchains) at most ``concurrency`` at a time, and record
each outcome in its own transaction. Two sweeps run on one SSH pool: cold (every connection
made, as after a start) and warm (the pool's connections reused, as every later round).
The servers run in a process of their own (each probe runs /bin/sh there, as on a machine),
but on the same cores as labfleet, so the figures are a floor of what a lab of real machines
gives; labfleet's own CPU time for the sweep is printed apart from the wall time, which
includes the servers' work. Goal: a sweep of 1,000 in < 5 s.
SQLite, as a lab starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import func, insert, select

from labfleet.db import migrate
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import BuildServer
from labfleet.engine.health import HealthMonitor
from labfleet.hw.ssh import SshPool, SshSettings
from labfleet.hw.ssh_server import LocalSshServer, new_private_key, public_key_of
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.health.build_servers import HealthPolicy


def _address(i: int) -> str:
    return f"127.0.{i // 250 + 1}.{i % 250 + 1}"


async def sweep(endpoints: int, concurrencies: list[int]) -> None:
    key = new_private_key()
    box = SecretBox(Fernet.generate_key())
    host_key = new_private_key()
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(
                LocalSshServer(
                    authorized_keys=[public_key_of(private_key=key)], host=_address(i), host_key=host_key
                )
            )
            for i in range(endpoints)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'labfleet.db'}"
            await asyncio.to_thread(migrate.upgrade, url)
            engine = create_engine(url)
            sessions = session_factory(engine)
            sealed = box.seal({"private_key": key})
            rows = [
                {
                    "hostname": f"bs-{i}",
                    "address": s.host,
                    "ssh_port": s.port,
                    "ssh_user": "build",
                    "ssh_secret": sealed,
                    "ssh_host_key": s.host_key,
                    "max_concurrent_builds": 4,
                }
                for i, s in enumerate(servers)
            ]
            async with sessions() as session:
                await session.execute(insert(BuildServer), rows)
                await session.commit()
            for concurrency in concurrencies:
                async with SshPool(settings=SshSettings(connect_timeout=60, connect_attempts=1)) as pool:
                    monitor = HealthMonitor(
                        sessions=sessions,
                        bus=EventBus(),
                        secrets=box,
                        pool=pool,
                        policy=HealthPolicy(timeout_seconds=120),
                        interval_s=0.0,
                        concurrency=concurrency,
                    )
                    for sweep_of in ("cold: every connection made", "warm: the pool's connections"):
                        started, cpu = time.perf_counter(), time.process_time()
                        await monitor.check_all()
                        took, busy = time.perf_counter() - started, time.process_time() - cpu
                        async with sessions() as session:
                            ok = await session.scalar(
                                select(func.count())
                                .select_from(BuildServer)
                                .where(BuildServer.check_failures == 0, BuildServer.checked_at.is_not(None))
                            )
                        print(
                            f"sweep of {endpoints} build servers over SSH, {concurrency} at a time, "
                            f"{sweep_of}: {took:.2f} s, {endpoints / took:.0f} checks/s, labfleet's CPU "
                            f"{busy:.2f} s, {ok} of {endpoints} answered (goal < 5 s)"
                        )
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args()
    asyncio.run(sweep(args.endpoints, args.concurrency))


if __name__ == "__main__":
    main()
