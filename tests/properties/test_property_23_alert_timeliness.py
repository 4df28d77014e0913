"""Property 23: alerts come in time, and never before their condition.

For any lab settings (interval, failure limit, jitter) and any sequence of check results of a
build server, on a clock the test controls: the checks run at the rounds the monitor would
wait (``tuning.next_round``); whenever the server stops answering, its ``unreachable`` alert
exists by the moment it went down plus the configured ``alert_time_limit_seconds``; no such
alert exists while the server answers or before the failure limit is reached; and the
alert is resolved by the first answer after it.

Validates: 2.3, 16.1, 16.2, property 23
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Alert, BuildServer
from labfleet.hw.probe import MachineFacts
from labfleet.schemas.enums import ResourceKind
from labfleet.schemas.settings import LabSettings
from labfleet.services.health import build_servers as health
from labfleet.services.health import tuning
from labfleet.services.health.build_servers import HealthPolicy, Probe, Target
from tests.helpers import example

DB = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
_GB = 1024**3
_names = itertools.count()

FACTS = MachineFacts(
    cpu_count=8,
    architecture="x86_64",
    memory_total_bytes=32 * _GB,
    memory_available_bytes=16 * _GB,
    disk_path=".",
    disk_total_bytes=500 * _GB,
    disk_free_bytes=400 * _GB,
    load=(0.1, 0.1, 0.1),
    toolchains=(),
)

lab_settings = st.builds(
    lambda interval, limit, jitter: LabSettings.model_validate(
        {
            "check_interval_seconds": {"build_server": interval},
            "thresholds": {"build_server": {"failure_limit": limit}},
            "check_jitter": jitter,
            # As tight as the build server's checks allow (the other kinds keep their defaults).
            "alert_time_limit_seconds": max(interval * limit, 60.0 * 3) * (1 + jitter),
        }
    ),
    st.sampled_from([5.0, 30.0, 60.0, 300.0]),
    st.integers(min_value=1, max_value=5),
    st.sampled_from([0.0, 0.1, 0.5]),
)


async def _unreachable(session: AsyncSession, server_id: int) -> Alert | None:
    stmt = select(Alert).where(
        Alert.resource_kind == "build_server",
        Alert.resource_id == server_id,
        Alert.kind == "unreachable",
        Alert.state != "resolved",
    )
    return (await session.scalars(stmt)).first()


@DB
@given(
    lab=lab_settings,
    answers=st.lists(st.booleans(), min_size=1, max_size=25),
    draws=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=25, max_size=25),
)
async def test_property_23_an_alert_is_in_time_and_never_early(
    session: AsyncSession, lab: LabSettings, answers: list[bool], draws: list[float]
) -> None:
    assert lab.inconsistency() is None
    limit = lab.failure_limit(ResourceKind.build_server, 1)
    async with example(session):
        server = BuildServer(hostname=f"p23-{next(_names)}", address="10.23.0.1", ssh_user="build")
        session.add(server)
        await session.flush()
        target = Target(server_id=server.id, hostname=server.hostname, status="online", ssh=None)
        policy = tuning.build_server(HealthPolicy(), lab, server.id)
        now = utcnow()
        last_answer = now  # when it was last seen answering: it may have gone down just after
        missed = 0
        for answered, draw in zip(answers, draws, strict=False):
            now += timedelta(seconds=tuning.next_round(lab, ResourceKind.build_server, draw=lambda d=draw: d))
            probe = Probe(
                target=target, facts=FACTS if answered else None, error=None if answered else "refused"
            )
            await health.record(session=session, probe=probe, policy=policy, now=now)
            missed = 0 if answered else missed + 1
            alert = await _unreachable(session, server.id)
            if missed >= limit:
                # In time: by the moment it went down (at worst just after its last answer) plus the limit.
                assert alert is not None, (missed, limit)
                took = alert.first_seen_at - last_answer
                assert took <= timedelta(seconds=lab.detection_seconds(ResourceKind.build_server, limit))
                assert took <= timedelta(seconds=lab.alert_time_limit_seconds)
            else:
                # Never early: not while it answers, not before the failure limit; an answer resolves it.
                assert alert is None, (answered, missed, limit)
            if answered:
                last_answer = now
