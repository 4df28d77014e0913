"""Inventory at lab scale: register 10,000 boards, then list them by label through the API.

    .venv/bin/python -m benchmarks.inventory [--boards 10000] [--requests 1000]
                                             [--backend sqlite|postgresql|all]

Registration goes through the service layer, one transaction per board, as the API does.
Listing goes through the ASGI app (auth, filters, count, page of 50, rendering), in process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from labfleet.api.app import create_app
from labfleet.config import Settings, normalize_database_url
from labfleet.db import migrate
from labfleet.db.engine import create_engine, session_factory
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.enums import Role
from labfleet.secretbox import SecretBox
from labfleet.services.core import tokens
from labfleet.services.inventory import boards
from labfleet.services.inventory.registration import InputOnly

PG_ADMIN = normalize_database_url(
    os.environ.get("LABFLEET_TEST_PG_URL", "postgresql://labfleet:labfleet@127.0.0.1:5432/postgres")
)
ARCHES = ("arm64", "arm", "x86_64", "riscv64")


def board(n: int) -> BoardCreate:
    return BoardCreate.model_validate(
        {
            "name": f"board-{n:05d}",
            "board_type": f"type-{n % 40}",
            "architecture": ARCHES[n % len(ARCHES)],
            "serial_number": f"SN{n:08d}",
            "console_url": f"rfc2217://console-{n // 48}.lab:{7000 + n % 48}",
            "power": {
                "driver": "pdudaemon",
                "url": "http://pdu:16421",
                "pdu": f"pdu-{n // 24}",
                "outlet": n % 24,
            },
            "peripherals": ["usb-ethernet"] if n % 3 else ["usb-ethernet", "sd-mux"],
            "labels": {
                "rack": f"r{n % 100}",
                "site": "lab-a" if n % 2 else "lab-b",
                "owner": f"team-{n % 7}",
            },
        }
    )


async def _pg(statement: str) -> None:
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def register_all(url: str, secrets: SecretBox, count: int) -> tuple[float, str]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with sessions() as session:
        _, token = await tokens.create(session=session, actor=SYSTEM, name="bench", role=Role.viewer)
        await session.commit()
    validator = InputOnly()
    started = time.perf_counter()
    for n in range(count):
        async with sessions() as session:
            await boards.register(
                session=session, actor=SYSTEM, secrets=secrets, validator=validator, data=board(n)
            )
            await session.commit()
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed, token


async def list_by_label(settings: Settings, token: str, requests: int) -> list[float]:
    app = create_app(settings)
    timings: list[float] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
            for i in range(requests + 20):
                params = {"label": f"rack=r{i % 100}", "limit": 50, "offset": (i % 2) * 50}
                started = time.perf_counter()
                r = await client.get("/api/v1/boards", params=params)
                took = time.perf_counter() - started
                if r.status_code != 200 or not r.json()["count"]:
                    raise RuntimeError(f"unexpected answer: {r.status_code} {r.text[:200]}")
                if i >= 20:  # the first requests warm caches and the pool
                    timings.append(took * 1000)
    return timings


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(backend: str, count: int, requests: int) -> None:
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
            settings = Settings(data_dir=data_dir, database_url=url)
            secrets = SecretBox.from_key_file(settings.effective_secret_key_file)
            elapsed, token = await register_all(url, secrets, count)
            print(
                f"{backend:10} register {count} boards (service layer, one transaction each): "
                f"{elapsed:.1f} s, {count / elapsed:.0f} boards/s"
            )
            timings = await list_by_label(settings, token, requests)
            print(
                f"{backend:10} GET /api/v1/boards?label=rack=rN&limit=50 over {count} boards, "
                f"{requests} requests: "
                f"median {statistics.median(timings):.2f} ms, p99 {percentile(timings, 99):.2f} ms, "
                f"max {max(timings):.2f} ms"
            )
        finally:
            if backend == "postgresql":
                await _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--boards", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "all" else (args.backend,):
        asyncio.run(run(backend, args.boards, args.requests))


if __name__ == "__main__":
    main()
