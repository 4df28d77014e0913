"""``/metrics`` at lab scale: the scrape time over 10,000 resources and their history.

    .venv/bin/python -m benchmarks.metrics [--resources 10000] [--scrapes 50]
                                           [--backend sqlite|postgresql|all]

The lab: 20% build servers, 30% QEMU hosts, 50% boards, mostly online (some degraded,
offline, in maintenance); five finished builds per build server, one finished pipeline
(four stages) per board, an open alert for one resource in twenty, a notification
delivery per alert. Each scrape goes through the ASGI app as Prometheus's would (a viewer
token, every figure aggregated by the database, rendered by prometheus-client); the first
five warm the pool and are not counted. Goal: p99 < 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, make_url

from benchmarks.inventory import PG_ADMIN, _pg, percentile
from labfleet.api.app import create_app
from labfleet.config import Settings
from labfleet.db import migrate
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import (
    Alert,
    AlertEvent,
    Board,
    BuildJob,
    BuildServer,
    Host,
    NotificationChannel,
    NotificationDelivery,
    Pipeline,
    PipelineStage,
)
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import Role
from labfleet.services.core import tokens

NOW = datetime.now(UTC)
STATUSES = ["online"] * 17 + ["degraded", "offline", "maintenance"]
ARCHES = ("arm64", "x86_64", "arm", "riscv64")


async def _rows(sessions: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    async with sessions() as session:
        for start in range(0, len(rows), 2000):
            await session.execute(insert(model), rows[start : start + 2000])
        await session.commit()


def _finished(rng: random.Random, seconds: float) -> tuple[datetime, datetime]:
    end = NOW - timedelta(seconds=rng.uniform(0, 30 * 86400))
    return end - timedelta(seconds=seconds), end


async def populate(url: str, count: int) -> str:  # long: one kind of row after another
    rng = random.Random(7)
    engine = create_engine(url)
    sessions = session_factory(engine)
    n_servers, n_hosts = count // 5, count * 3 // 10
    n_boards = count - n_servers - n_hosts
    await _rows(
        sessions,
        BuildServer,
        [
            {
                "hostname": f"bs-{i}",
                "address": f"10.1.{i // 250}.{i % 250}",
                "ssh_user": "build",
                "status": rng.choice(STATUSES),
                "max_concurrent_builds": rng.choice([2, 4, 8]),
            }
            for i in range(n_servers)
        ],
    )
    await _rows(
        sessions,
        Host,
        [
            {
                "hostname": f"kvm-{i}",
                "address": f"10.2.{i // 250}.{i % 250}",
                "ssh_user": "root",
                "libvirt_uri": f"qemu+ssh://root@kvm-{i}/system",
                "status": rng.choice(STATUSES),
                "cpu_cores": rng.choice([16, 32, 64]),
                "memory_mb": rng.choice([65536, 131072]),
            }
            for i in range(n_hosts)
        ],
    )
    await _rows(
        sessions,
        Board,
        [
            {
                "name": f"board-{i}",
                "board_type": f"type-{i % 30}",
                "architecture": ARCHES[i % 4],
                "serial_number": f"SN{i:08d}",
                "status": rng.choice(STATUSES),
            }
            for i in range(n_boards)
        ],
    )
    builds = []
    for i in range(n_servers * 5):
        start, end = _finished(rng, rng.uniform(60, 3600))
        builds.append(
            {
                "repository_url": "https://git.lab/linux.git",
                "architecture": ARCHES[i % 4],
                "submitted_by": "ci",
                "status": rng.choice(["succeeded"] * 9 + ["failed"]),
                "queued_at": start,
                "started_at": start,
                "finished_at": end,
            }
        )
    builds += [
        {
            "repository_url": "https://git.lab/linux.git",
            "architecture": ARCHES[i % 4],
            "submitted_by": "ci",
            "status": "queued",
            "queued_at": NOW - timedelta(seconds=i),
        }
        for i in range(200)
    ]
    await _rows(sessions, BuildJob, builds)
    pipelines = []
    for i in range(n_boards):
        start, end = _finished(rng, rng.uniform(300, 5400))
        pipelines.append(
            {
                "id": i + 1,
                "repository_url": "https://git.lab/linux.git",
                "architecture": ARCHES[i % 4],
                "environment_type": "board",
                "submitted_by": "ci",
                "spec": {},
                "status": rng.choice(["succeeded"] * 4 + ["failed"]),
                "created_at": start,
                "started_at": start,
                "finished_at": end,
            }
        )
    await _rows(sessions, Pipeline, pipelines)
    stages = []
    for p in pipelines:
        failed = rng.choice(["build", "deploy", "boot", "test"]) if p["status"] == "failed" else None
        for position, name in enumerate(("build", "deploy", "boot", "test")):
            stages.append(
                {
                    "pipeline_id": p["id"],
                    "position": position,
                    "name": name,
                    "status": "failed" if name == failed else "succeeded",
                    "started_at": p["started_at"],
                    "finished_at": p["started_at"] + timedelta(seconds=90),
                }
            )
    await _rows(sessions, PipelineStage, stages)
    await _rows(
        sessions,
        NotificationChannel,
        [
            {
                "id": 1,
                "name": "ops-hook",
                "transport": "webhook",
                "config": {},
                "resource_kinds": [],
                "events": [],
            }
        ],
    )
    alerts = [
        {
            "id": i + 1,
            "resource_kind": "board",
            "resource_id": i * 20 + 1,
            "kind": "unreachable",
            "severity": rng.choice(["warning", "critical"]),
            "message": "did not answer",
        }
        for i in range(count // 20)
    ]
    await _rows(sessions, Alert, alerts)
    await _rows(
        sessions,
        AlertEvent,
        [
            {
                "id": a["id"],
                "alert_id": a["id"],
                "event": "raised",
                "severity": a["severity"],
                "resource_kind": "board",
                "resource_id": a["resource_id"],
                "kind": "unreachable",
                "message": "m",
                "published_at": NOW,
            }
            for a in alerts
        ],
    )
    await _rows(
        sessions,
        NotificationDelivery,
        [{"event_id": a["id"], "channel_id": 1, "state": "delivered", "attempts": 1} for a in alerts],
    )
    async with sessions() as session:
        _, token = await tokens.create(session=session, actor=SYSTEM, name="prometheus", role=Role.viewer)
        await session.commit()
    await engine.dispose()
    return token


async def scrape(settings: Settings, token: str, scrapes: int) -> tuple[list[float], int]:
    app = create_app(settings)
    timings: list[float] = []
    size = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
            for i in range(scrapes + 5):
                started = time.perf_counter()
                r = await client.get("/metrics")
                took = time.perf_counter() - started
                if r.status_code != 200 or "labfleet_resources" not in r.text:
                    raise RuntimeError(f"unexpected answer: {r.status_code} {r.text[:200]}")
                size = len(r.content)
                if i >= 5:
                    timings.append(took * 1000)
    return timings, size


async def run(backend: str, count: int, scrapes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        pg_name = f"labfleet_bench_{uuid.uuid4().hex[:8]}"
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{data_dir / 'labfleet.db'}"
        else:
            await _pg(f'CREATE DATABASE "{pg_name}"')
            url = make_url(PG_ADMIN).set(database=pg_name).render_as_string(hide_password=False)
        try:
            await asyncio.to_thread(migrate.upgrade, url)
            token = await populate(url, count)
            settings = Settings(data_dir=data_dir, database_url=url, engine=False, device_checks=False)
            timings, size = await scrape(settings, token, scrapes)
            print(
                f"{backend:10} GET /metrics over {count} resources ({count} builds, {count // 2} "
                f"pipelines, {count // 20} open alerts), {scrapes} scrapes of {size / 1024:.1f} KiB: "
                f"median {statistics.median(timings):.1f} ms, p99 {percentile(timings, 99):.1f} ms "
                f"(goal < 200 ms)"
            )
        finally:
            if backend == "postgresql":
                await _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "all" else (args.backend,):
        asyncio.run(run(backend, args.resources, args.scrapes))


if __name__ == "__main__":
    main()
