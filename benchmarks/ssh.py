"""SSH driver throughput: a pooled connection against a new connection per command, and
registration probes of many endpoints at once.

    .venv/bin/python -m benchmarks.ssh [--seconds 2] [--endpoints 200]

The servers are asyncssh servers in this process on loopback (``hw/ssh_server.py``), which
run each command with /bin/sh, so server and client share one Python thread: the figures
are a floor, not what a real sshd on another machine gives. With
``LABFLEET_BENCH_SSH=host:port:user:keyfile`` the first part also runs against that sshd.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from labfleet.hw.probe import probe_machine
from labfleet.hw.ssh import SshPool, SshRunner, SshSettings, SshTarget
from labfleet.hw.ssh_server import LocalSshServer, new_private_key, public_key_of

SETTINGS = SshSettings(connect_timeout=30, connect_attempts=2)


async def pooled(target: SshTarget, seconds: float, *, concurrency: int) -> float:
    """Commands per second over one pooled connection, ``concurrency`` in flight."""
    async with SshPool(settings=SETTINGS) as pool:
        runner = SshRunner(pool=pool, target=target)
        await runner.run("true", timeout=30)  # connected before the clock starts
        done = 0
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await runner.run("true", timeout=30)
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def fresh(target: SshTarget, seconds: float) -> float:
    """Commands per second when each one opens, authenticates and closes its own connection."""
    done = 0
    started = time.perf_counter()
    while time.perf_counter() < started + seconds:
        async with SshPool(settings=SETTINGS) as pool:
            await SshRunner(pool=pool, target=target).run("true", timeout=30)
        done += 1
    return done / (time.perf_counter() - started)


async def compare(name: str, target: SshTarget, *, seconds: float) -> None:
    sequential = await pooled(target, seconds, concurrency=1)
    parallel = await pooled(target, seconds, concurrency=8)
    one_each = await fresh(target, seconds)
    print(f"{name} ({seconds:g} s per figure):")
    print(f"  pooled connection, one at a time    {sequential:8.1f} commands/s")
    print(f"  pooled connection, 8 in flight      {parallel:8.1f} commands/s")
    print(f"  new connection per command          {one_each:8.1f} commands/s")
    print(f"  pooled / new connection             {sequential / one_each:8.1f} x")


async def many_endpoints(count: int, client_key: str) -> None:
    public = public_key_of(private_key=client_key)
    servers = [LocalSshServer(authorized_keys=[public]) for _ in range(count)]
    await asyncio.gather(*(s.start() for s in servers))
    try:
        targets = [
            SshTarget(host=s.host, port=s.port, username="bench", private_key=client_key) for s in servers
        ]
        async with SshPool(settings=SETTINGS) as pool:

            async def register(target: SshTarget) -> float:
                began = time.perf_counter()
                await pool.host_key(target, timeout=120)
                facts = await probe_machine(runner=SshRunner(pool=pool, target=target), timeout=120)
                if not facts.toolchains:
                    raise SystemExit(f"{target.where}: the probe found no compiler")
                return time.perf_counter() - began

            started = time.perf_counter()
            each = await asyncio.gather(*(register(t) for t in targets))
            total = time.perf_counter() - started
            keys_started = time.perf_counter()
            await asyncio.gather(*(pool.host_key(t, timeout=120) for t in targets))
            keys_pooled = time.perf_counter() - keys_started
    finally:
        await asyncio.gather(*(s.stop() for s in servers))
    accepted = sum(s.accepted for s in servers)
    print(f"{count} endpoints registered at once (TOFU host key + facts probe, one pool):")
    print(f"  all done in                         {total:8.2f} s")
    print(f"  per endpoint, median / max          {statistics.median(each):8.2f} s / {max(each):.2f} s")
    print(f"  host keys again, pooled             {keys_pooled:8.3f} s ({accepted} connections in all)")


def real_sshd() -> SshTarget | None:
    """The sshd named by LABFLEET_BENCH_SSH=host:port:user:keyfile, if set."""
    real = os.environ.get("LABFLEET_BENCH_SSH")
    if not real:
        return None
    host, port, user, keyfile = real.split(":", 3)
    return SshTarget(host=host, port=int(port), username=user, private_key=Path(keyfile).read_text())


async def main(args: argparse.Namespace, real: SshTarget | None) -> None:
    client_key = new_private_key()
    async with LocalSshServer(authorized_keys=[public_key_of(private_key=client_key)]) as server:
        target = SshTarget(
            host=server.host,
            port=server.port,
            username="bench",
            private_key=client_key,
            host_key=server.host_key,
        )
        await compare("in-process asyncssh server on loopback", target, seconds=args.seconds)

    if real is not None:
        await compare(f"sshd at {real.where}", real, seconds=args.seconds)

    await many_endpoints(args.endpoints, client_key)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    parser.add_argument("--endpoints", type=int, default=200)
    asyncio.run(main(parser.parse_args(), real_sshd()))
