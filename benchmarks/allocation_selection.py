"""Host and board selection: decisions per second and latency over 10,000 candidates each.

    .venv/bin/python -m benchmarks.allocation_selection [--hosts 10000] [--boards 10000]
        [--decisions 100] [--runs 5]

Hosts are random but realistic: mostly online, a few degraded, offline, in maintenance or
decommissioned; x86_64 or arm64 natively (most with KVM), some emulating other
architectures; 8-256 cores, 16-1024 GB, partly reserved; most sampled, some near or over
their threshold. Boards: a dozen types over four architectures, mostly online, some
flashing, failed or offline, a quarter held, 0-4 peripherals, a use history. Requests mix
sizes, architectures, KVM, labels, board types and peripherals; some match nothing (422),
some pin a resource. Each run makes ``--decisions`` decisions; the rate shown is the median
over the runs, and p50/p99 are over every single decision timed on its own. The explanation
(every candidate, scored or excluded) and the alternatives are built for each decision, as
in production, and one decision per run is serialised to check it stays JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from labfleet.schemas.enums import Architecture, BoardStatus, ServerStatus
from labfleet.selection import (
    BoardCandidate,
    BoardRequest,
    HostCandidate,
    HostRequest,
    HostUtilization,
    select_board,
    select_host,
)

NOW = datetime(2024, 6, 11, 12, 0, tzinfo=UTC)
EMULATED = [Architecture.arm, Architecture.riscv64, Architecture.ppc64le, Architecture.s390x]
BOARD_TYPES = {
    Architecture.arm64: ["rpi4", "rpi5", "imx8mp", "rk3588", "jetson-orin"],
    Architecture.arm: ["beaglebone", "stm32mp1", "imx6ull"],
    Architecture.riscv64: ["visionfive2", "licheepi4a"],
    Architecture.x86_64: ["minnowboard", "up-squared"],
}
PERIPHERALS = ["usb-ethernet", "sd-mux", "can", "hdmi-capture", "i2c-sensor", "wifi"]


def hosts(rng: random.Random, count: int) -> list[HostCandidate]:
    out = []
    for i in range(1, count + 1):
        native = rng.choice([Architecture.x86_64] * 3 + [Architecture.arm64])
        cores = rng.choice([8, 16, 32, 64, 128, 256])
        memory = cores * rng.choice([2048, 4096, 8192])
        storage = float(rng.choice([500, 1000, 2000, 4000]))
        fill = rng.random()
        sampled = rng.random() < 0.9
        util = [min(100.0, max(0.0, rng.gauss(45 + fill * 30, 20))) for _ in range(3)]
        out.append(
            HostCandidate(
                id=i,
                name=f"kvm-{i:05d}",
                status=rng.choices(list(ServerStatus), weights=[85, 6, 4, 4, 1])[0],
                native_architectures=frozenset({native, Architecture.i386})
                if native is Architecture.x86_64
                else frozenset({native}),
                emulated_architectures=frozenset(rng.sample(EMULATED, rng.randint(0, 4))),
                kvm=rng.random() < 0.95,
                cpu_cores=cores,
                memory_mb=memory,
                storage_gb=storage,
                reserved_vcpus=int(cores * fill),
                reserved_memory_mb=int(memory * fill * rng.uniform(0.7, 1.0)),
                reserved_disk_gb=round(storage * fill * 0.5, 1),
                reservations=int(fill * cores / 4),
                utilization=HostUtilization(*util) if sampled else None,
                utilization_threshold_pct=rng.choice([80.0, 85.0, 90.0]),
                labels={"rack": f"r{i % 40}", "site": rng.choice(["ber", "muc"])},
            )
        )
    return out


def host_requests(rng: random.Random, count: int, pool: int) -> list[HostRequest]:
    return [
        HostRequest(
            architecture=rng.choice([Architecture.x86_64] * 4 + [Architecture.arm64] * 3 + EMULATED),
            vcpus=rng.choice([1, 2, 4, 8, 16]),
            memory_mb=rng.choice([1024, 2048, 4096, 16384]),
            disk_gb=float(rng.choice([0, 10, 40])),
            kvm_required=rng.random() < 0.3,
            labels=rng.choice([{}, {}, {}, {"site": "ber"}]),
            host_id=rng.randint(1, pool) if rng.random() < 0.1 else None,
        )
        for _ in range(count)
    ]


def boards(rng: random.Random, count: int) -> list[BoardCandidate]:
    out = []
    for i in range(1, count + 1):
        arch = rng.choice(list(BOARD_TYPES))
        held = rng.random() < 0.25
        used = rng.random() < 0.8
        out.append(
            BoardCandidate(
                id=i,
                name=f"board-{i:05d}",
                status=rng.choices(list(BoardStatus), weights=[80, 5, 4, 3, 4, 3, 1])[0],
                architecture=arch,
                board_type=rng.choice(BOARD_TYPES[arch]),
                peripherals=frozenset(rng.sample(PERIPHERALS, rng.randint(0, 4))),
                labels={"rack": f"r{i % 40}", "team": rng.choice(["kernel", "boot", "net"])},
                reachable=rng.choices([True, False, None], weights=[92, 3, 5])[0],
                consecutive_failures=rng.choices([0, 1, 2, 3], weights=[90, 6, 3, 1])[0],
                held=held,
                held_by=rng.choice(["alice", "bob", "ci"]) if held else None,
                held_until=NOW + timedelta(minutes=rng.randint(1, 600)) if held else None,
                uses=rng.randint(0, 40) if used else 0,
                last_used_at=NOW - timedelta(minutes=rng.randint(1, 20_000)) if used else None,
            )
        )
    return out


def board_requests(rng: random.Random, count: int, pool: int) -> list[BoardRequest]:
    out = []
    for _ in range(count):
        arch = rng.choice([*BOARD_TYPES, Architecture.s390x] if rng.random() < 0.05 else list(BOARD_TYPES))
        types = BOARD_TYPES.get(arch, ["z15"])
        out.append(
            BoardRequest(
                architecture=arch,
                board_type=rng.choice([None, *types]),
                peripherals=frozenset(rng.sample(PERIPHERALS, rng.choice([0, 0, 1, 2]))),
                labels=rng.choice([{}, {}, {"team": "kernel"}]),
                board_id=rng.randint(1, pool) if rng.random() < 0.1 else None,
            )
        )
    return out


def measure(name: str, decide: Callable[[Any], Any], batch: Sequence[Any], runs: int) -> None:
    rates: list[float] = []
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    for _ in range(runs):
        start = time.perf_counter()
        for request in batch:
            t0 = time.perf_counter()
            decision = decide(request)
            latencies.append(time.perf_counter() - t0)
            outcomes[decision.outcome.value] += 1
        rates.append(len(batch) / (time.perf_counter() - start))
        json.dumps(decision.as_dict())

    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    mix = ", ".join(f"{k} {v // runs}" for k, v in sorted(outcomes.items()))
    print(f"{name}: {len(batch)} decisions per run ({mix}), {runs} runs")
    print(f"  decisions per second (median of runs): {statistics.median(rates):,.1f}")
    print(f"  runs: {', '.join(f'{r:,.1f}' for r in rates)}")
    print(f"  latency of one decision: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--boards", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(20240611)
    host_pool = hosts(rng, args.hosts)
    board_pool = boards(rng, args.boards)
    print(f"hosts: {args.hosts}, boards: {args.boards}")
    measure(
        "hosts",
        lambda request: select_host(request=request, candidates=host_pool),
        host_requests(rng, args.decisions, args.hosts),
        args.runs,
    )
    measure(
        "boards",
        lambda request: select_board(request=request, candidates=board_pool),
        board_requests(rng, args.decisions, args.boards),
        args.runs,
    )


if __name__ == "__main__":
    main()
