"""``/metrics`` in the Prometheus text format: read with a viewer token, every figure from the
database (so any process of a lab tells the same), parsed back as Prometheus would.

Validates: 15.5 (metrics), 16 (alerts, notifications)
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Pipeline, PipelineStage, Reservation
from labfleet.services.core import alerts
from tests.api.test_reservations_api import add_board, add_host
from tests.db.build_rows import build_job


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def _pipeline(session: AsyncSession, status: str, failed: str | None, minutes: int) -> None:
    now = utcnow()
    pipeline = Pipeline(
        repository_url="https://git.lab/linux.git",
        architecture="arm64",
        environment_type="board",
        spec={},
        status=status,
        submitted_by="ci",
        started_at=now - timedelta(minutes=minutes),
        finished_at=now,
    )
    session.add(pipeline)
    await session.flush()
    for position, name in enumerate(("build", "deploy", "boot", "test")):
        state = "failed" if name == failed else "succeeded"
        session.add(
            PipelineStage(
                pipeline_id=pipeline.id,
                position=position,
                name=name,
                status=state,
                started_at=now - timedelta(seconds=40),
                finished_at=now - timedelta(seconds=20),
            )
        )
    await session.flush()


async def test_a_viewer_scrapes_counts_capacity_queues_durations_outcomes_and_alerts(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    host = await add_host(session, "kvm-1")
    await add_host(session, "kvm-2", status="maintenance")
    board = await add_board(session, "rpi-1")
    session.add(
        Reservation(
            host_id=host, owner="ci", vcpus=2, memory_mb=2048, expires_at=utcnow() + timedelta(hours=1)
        )
    )
    session.add(Reservation(board_id=board, owner="ci", expires_at=utcnow() + timedelta(hours=1)))
    await build_job(session, status="succeeded")  # 5 minutes
    await build_job(session, status="failed")
    await build_job(
        session,
        status="queued",
        started_at=None,
        finished_at=None,
        queued_at=utcnow() - timedelta(seconds=90),
    )
    await _pipeline(session, "succeeded", None, 12)
    await _pipeline(session, "failed", "boot", 7)
    await alerts.raise_alert(
        session=session,
        resource_kind="host",
        resource_id=host,
        kind="unreachable",
        severity="critical",
        message="m",
    )
    await session.commit()

    assert (await client.get("/metrics", headers={"Authorization": ""})).status_code == 401
    scraped = await client.get("/metrics", headers=as_role["viewer"])
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    got = _samples(scraped.text)

    assert got[("labfleet_resources", (("kind", "host"), ("status", "online")))] == 1
    assert got[("labfleet_resources", (("kind", "host"), ("status", "maintenance")))] == 1
    assert got[("labfleet_resources", (("kind", "board"), ("status", "online")))] == 1
    # Only the host in service counts: kvm-1's 8 vCPUs, 2 of them reserved.
    assert got[("labfleet_capacity", (("resource", "host_vcpus"), ("state", "total")))] == 8
    assert got[("labfleet_capacity", (("resource", "host_vcpus"), ("state", "used")))] == 2
    assert got[("labfleet_capacity", (("resource", "boards"), ("state", "used")))] == 1
    assert got[("labfleet_queue_depth", (("architecture", "arm64"), ("work", "build")))] == 1
    assert (
        85
        <= got[("labfleet_queue_oldest_wait_seconds", (("architecture", "arm64"), ("work", "build")))]
        < 600
    )

    # Five-minute builds: above the 120 s bucket, within the 300 s one.
    ok = (("status", "succeeded"),)
    assert got[("labfleet_build_duration_seconds_bucket", (("le", "120.0"), *ok))] == 0
    assert got[("labfleet_build_duration_seconds_bucket", (("le", "300.0"), *ok))] == 1
    assert got[("labfleet_build_duration_seconds_count", ok)] == 1
    assert got[("labfleet_build_duration_seconds_sum", ok)] == 300
    assert got[("labfleet_stage_duration_seconds_count", (("stage", "boot"), ("status", "failed")))] == 1
    assert (
        got[
            (
                "labfleet_stage_duration_seconds_bucket",
                (("le", "15.0"), ("stage", "test"), ("status", "succeeded")),
            )
        ]
        == 0
    )
    assert (
        got[
            (
                "labfleet_stage_duration_seconds_bucket",
                (("le", "30.0"), ("stage", "test"), ("status", "succeeded")),
            )
        ]
        == 2
    )
    assert got[("labfleet_pipeline_duration_seconds_count", (("status", "failed"),))] == 1
    assert got[("labfleet_pipelines_finished_total", (("failed_stage", "boot"), ("outcome", "failed")))] == 1
    assert got[("labfleet_pipelines_finished_total", (("failed_stage", ""), ("outcome", "succeeded")))] == 1
    assert got[("labfleet_alerts_open", (("resource_kind", "host"), ("severity", "critical")))] == 1
    assert got[("labfleet_notification_channels_failing", ())] == 0
