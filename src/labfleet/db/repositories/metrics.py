"""Aggregates for ``/metrics``: each one query over the rows, so that every process that
answers a scrape tells the same numbers (nothing is counted in a process's memory)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import (
    Alert,
    Board,
    BuildJob,
    BuildServer,
    Host,
    NotificationChannel,
    NotificationDelivery,
    Pipeline,
    PipelineStage,
    Reservation,
)
from labfleet.db.repositories.reservations import active

_SERVING = ("online", "degraded")


def seconds_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[float]:
    """``end - start`` in seconds, as the backend computes it."""
    if session.get_bind().dialect.name == "sqlite":
        # To the millisecond: julianday's float would put 300 s a hair above 300.
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)
    return cast(func.extract("epoch", end - start), Float)


async def resource_counts(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(kind, status, count) of every kind of resource."""
    found: list[tuple[str, str, int]] = []
    for kind, model in (("build_server", BuildServer), ("host", Host), ("board", Board)):
        rows = await session.execute(select(model.status, func.count()).group_by(model.status))
        found += [(kind, status, int(n)) for status, n in rows]
    return found


@dataclass(frozen=True, slots=True)
class Capacity:
    build_slots: int
    builds_running: int
    host_vcpus: int
    host_vcpus_reserved: int
    host_memory_mb: int
    host_memory_mb_reserved: int
    boards: int
    boards_reserved: int


async def capacity(session: AsyncSession, now: datetime) -> Capacity:
    slots = await session.scalar(
        select(func.coalesce(func.sum(BuildServer.max_concurrent_builds), 0)).where(
            BuildServer.status.in_(_SERVING)
        )
    )
    running = await session.scalar(select(func.count()).where(BuildJob.status == "running"))
    hosts = (
        await session.execute(
            select(
                func.coalesce(func.sum(Host.cpu_cores), 0), func.coalesce(func.sum(Host.memory_mb), 0)
            ).where(Host.status.in_(_SERVING))
        )
    ).one()
    held = active(now)
    reserved = (
        await session.execute(
            select(
                func.coalesce(func.sum(Reservation.vcpus), 0),
                func.coalesce(func.sum(Reservation.memory_mb), 0),
            ).where(held, Reservation.host_id.is_not(None))
        )
    ).one()
    boards = await session.scalar(select(func.count()).where(Board.status.in_(("online", "reserved"))))
    boards_held = await session.scalar(select(func.count()).where(held, Reservation.board_id.is_not(None)))
    return Capacity(
        build_slots=int(slots or 0),
        builds_running=int(running or 0),
        host_vcpus=int(hosts[0] or 0),
        host_vcpus_reserved=int(reserved[0] or 0),
        host_memory_mb=int(hosts[1] or 0),
        host_memory_mb_reserved=int(reserved[1] or 0),
        boards=int(boards or 0),
        boards_reserved=int(boards_held or 0),
    )


async def queue(session: AsyncSession, now: datetime) -> list[tuple[str, str, int, float]]:
    """(what, architecture, queued, seconds the oldest has waited) for builds and pipelines."""
    found: list[tuple[str, str, int, float]] = []
    for what, model, arch, since, queued in (
        ("build", BuildJob, BuildJob.architecture, BuildJob.queued_at, BuildJob.status == "queued"),
        ("pipeline", Pipeline, Pipeline.architecture, Pipeline.created_at, Pipeline.status == "queued"),
    ):
        rows = await session.execute(
            select(arch, func.count(), func.min(since)).select_from(model).where(queued).group_by(arch)
        )
        for architecture, n, oldest in rows:
            found.append((what, str(architecture), int(n), _age(oldest, now)))
    return found


def _age(oldest: datetime | None, now: datetime) -> float:
    if oldest is None:
        return 0.0
    return max(0.0, float((now - oldest).total_seconds()))


@dataclass(frozen=True, slots=True)
class Histogram:
    labels: tuple[str, ...]
    buckets: tuple[int, ...]
    """Cumulative counts, one per bound, the last one +Inf (the count)."""
    total: float


async def durations(
    session: AsyncSession,
    *,
    start: Any,
    end: Any,
    group: Sequence[Any],
    where: Sequence[ColumnElement[bool]],
    bounds: Sequence[float],
) -> list[Histogram]:
    """Finished work's durations, bucketed by the database: one row per ``group``."""
    took = seconds_between(session, start, end)
    columns = [func.sum(case((took <= b, 1), else_=0)) for b in bounds]
    stmt = (
        select(*group, *columns, func.count(), func.coalesce(func.sum(took), literal(0.0)))
        .where(start.is_not(None), end.is_not(None), *where)
        .group_by(*group)
    )
    found = []
    for row in await session.execute(stmt):
        labels = tuple(str(v) for v in row[: len(group)])
        counts = tuple(int(v or 0) for v in row[len(group) : len(group) + len(bounds) + 1])
        found.append(Histogram(labels, counts, float(row[-1] or 0.0)))
    return found


async def build_durations(session: AsyncSession, bounds: Sequence[float]) -> list[Histogram]:
    return await durations(
        session,
        start=BuildJob.started_at,
        end=BuildJob.finished_at,
        group=[BuildJob.status],
        where=[],
        bounds=bounds,
    )


async def stage_durations(session: AsyncSession, bounds: Sequence[float]) -> list[Histogram]:
    return await durations(
        session,
        start=PipelineStage.started_at,
        end=PipelineStage.finished_at,
        group=[PipelineStage.name, PipelineStage.status],
        where=[],
        bounds=bounds,
    )


async def pipeline_durations(session: AsyncSession, bounds: Sequence[float]) -> list[Histogram]:
    return await durations(
        session,
        start=Pipeline.started_at,
        end=Pipeline.finished_at,
        group=[Pipeline.status],
        where=[],
        bounds=bounds,
    )


async def pipeline_results(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(outcome, the stage that failed or "", count) of finished pipelines."""
    failed_stage = (
        select(PipelineStage.name)
        .where(PipelineStage.pipeline_id == Pipeline.id, PipelineStage.status == "failed")
        .order_by(PipelineStage.position)
        .limit(1)
        .scalar_subquery()
    )
    stage = func.coalesce(failed_stage, "")
    rows = await session.execute(
        select(Pipeline.status, stage, func.count())
        .where(Pipeline.finished_at.is_not(None))
        .group_by(Pipeline.status, stage)
    )
    return [(str(s), str(f), int(n)) for s, f, n in rows]


async def open_alerts(session: AsyncSession) -> list[tuple[str, str, int]]:
    rows = await session.execute(
        select(Alert.severity, Alert.resource_kind, func.count())
        .where(Alert.state != "resolved")
        .group_by(Alert.severity, Alert.resource_kind)
    )
    return [(str(s), str(k), int(n)) for s, k, n in rows]


async def deliveries(session: AsyncSession) -> tuple[list[tuple[str, str, int]], int]:
    """(transport, state, count) of deliveries, and how many channels are failing."""
    rows = await session.execute(
        select(NotificationChannel.transport, NotificationDelivery.state, func.count())
        .join(NotificationChannel, NotificationChannel.id == NotificationDelivery.channel_id)
        .group_by(NotificationChannel.transport, NotificationDelivery.state)
    )
    failing = await session.scalar(select(func.count()).where(NotificationChannel.failing_since.is_not(None)))
    return [(str(t), str(s), int(n)) for t, s, n in rows], int(failing or 0)
