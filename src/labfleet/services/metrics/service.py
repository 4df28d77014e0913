"""One scrape's numbers: counts, capacity, queues, duration histograms, outcomes, alerts and
deliveries, each aggregated by the database (``db/repositories/metrics.py``), so that any
process of a lab answers a scrape with the same figures."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.repositories import metrics as repo
from labfleet.db.repositories.metrics import Capacity, Histogram

# Seconds: a kernel build or a boot takes minutes, a full pipeline up to hours.
BUILD_BOUNDS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
STAGE_BOUNDS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
PIPELINE_BOUNDS = (60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    resources: list[tuple[str, str, int]]
    capacity: Capacity
    queues: list[tuple[str, str, int, float]]
    builds: list[Histogram]
    stages: list[Histogram]
    pipelines: list[Histogram]
    pipeline_results: list[tuple[str, str, int]]
    alerts: list[tuple[str, str, int]]
    deliveries: list[tuple[str, str, int]]
    failing_channels: int


async def snapshot(session: AsyncSession) -> Snapshot:
    deliveries, failing = await repo.deliveries(session)
    now = utcnow()
    return Snapshot(
        resources=await repo.resource_counts(session),
        capacity=await repo.capacity(session, now),
        queues=await repo.queue(session, now),
        builds=await repo.build_durations(session, BUILD_BOUNDS),
        stages=await repo.stage_durations(session, STAGE_BOUNDS),
        pipelines=await repo.pipeline_durations(session, PIPELINE_BOUNDS),
        pipeline_results=await repo.pipeline_results(session),
        alerts=await repo.open_alerts(session),
        deliveries=deliveries,
        failing_channels=failing,
    )
