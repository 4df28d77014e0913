"""Build server selection: placement decisions per second over 1,000 candidate servers.

    .venv/bin/python -m benchmarks.selection [--servers 1000] [--decisions 500] [--runs 5]

Candidates are random but realistic (mostly online, a few degraded, offline or in
maintenance; 1-4 toolchains; 8-128 cores; some near-full disks) with a history of 20,000
past builds. Each run makes ``--decisions`` decisions for random requests; the rate shown is
the median over the runs, and the p99 is over every single decision timed on its own.
The explanation (every candidate, scored or excluded) is built for each decision, as in
production, and serialised once per run to check it stays JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection import (
    BuildRequest,
    BuildServerCandidate,
    DurationSample,
    EstimateModel,
    Thresholds,
    select_build_server,
)

COMMON = [Architecture.x86_64, Architecture.arm64, Architecture.arm, Architecture.riscv64]


def candidates(rng: random.Random, count: int) -> list[BuildServerCandidate]:
    out = []
    for i in range(1, count + 1):
        cores = rng.choice([8, 16, 32, 64, 128])
        slots = max(1, cores // 8)
        active = rng.randint(0, slots)
        out.append(
            BuildServerCandidate(
                id=i,
                name=f"bs-{i:04d}",
                status=rng.choices(list(ServerStatus), weights=[85, 6, 4, 4, 1])[0],
                architectures=frozenset(rng.sample(COMMON, rng.randint(1, 4))),
                max_concurrent_builds=slots,
                active_builds=active,
                queued_builds=rng.randint(0, 3) if active == slots else 0,
                load_1m=round(rng.uniform(0, cores * 1.8), 2),
                cpu_cores=cores,
                disk_free_gb=round(rng.choice([rng.uniform(1, 60), rng.uniform(60, 4000)]), 1),
                labels={"rack": f"r{i % 12}", "site": rng.choice(["ber", "muc"])},
            )
        )
    return out


def history(rng: random.Random, servers: int) -> EstimateModel:
    samples = [
        DurationSample(
            rng.randint(1, servers),
            rng.choice(COMMON),
            rng.uniform(300, 5400),
            rng.choice([None, "linux.git", "u-boot.git"]),
        )
        for _ in range(20_000)
    ]
    return EstimateModel.from_samples(samples)


def requests(rng: random.Random, count: int) -> list[BuildRequest]:
    return [
        BuildRequest(
            architecture=rng.choice([*COMMON, Architecture.s390x]),
            labels=rng.choice([{}, {}, {}, {"site": "ber"}]),
            repository=rng.choice([None, "linux.git"]),
        )
        for _ in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(20240611)
    pool = candidates(rng, args.servers)
    model = history(rng, args.servers)
    limits = Thresholds()
    batch = requests(rng, args.decisions)

    rates: list[float] = []
    latencies: list[float] = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for request in batch:
            t0 = time.perf_counter()
            decision = select_build_server(request=request, candidates=pool, thresholds=limits, history=model)
            latencies.append(time.perf_counter() - t0)
        rates.append(len(batch) / (time.perf_counter() - start))
        json.dumps(decision.as_dict())

    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"servers: {args.servers}, decisions per run: {args.decisions}, runs: {args.runs}")
    print(f"decisions per second (median of runs): {statistics.median(rates):,.0f}")
    print(f"  runs: {', '.join(f'{r:,.0f}' for r in rates)}")
    print(f"latency of one decision: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")


if __name__ == "__main__":
    main()
