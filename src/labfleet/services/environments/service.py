"""Environments: artifacts chosen, checked against the target, the target reserved (R11).

``create`` does everything that needs only the database, in the caller's transaction:
the artifacts are found (build id, commit, or the latest build of a branch), checked for
compatibility (422 naming each problem before anything moves), the target chosen (by name,
or ``auto`` with its explanation) and reserved, and the row written ``pending``. Deploying
and booting reach devices and happen outside any transaction (``services/environments/provisioning.py``),
run by the environment worker or, for a pipeline's environment, by the pipeline's worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Artifact, Environment
from labfleet.db.models.environments import (
    ENV_FAILED,
    ENV_HOLDING,
    ENV_PENDING,
    ENV_RELEASED,
    ENV_RELEASING,
)
from labfleet.db.repositories import environments as repo
from labfleet.db.repositories import flashing as flash_repo
from labfleet.errors import Conflict, Invalid, NotFound
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.environments import ArtifactChoice, EnvironmentCreate
from labfleet.services.artifacts import service as artifact_service
from labfleet.services.core import audit
from labfleet.services.core.events import EventBus
from labfleet.services.environments import kinds
from labfleet.services.environments.compatibility import ArtifactFacts, Problem
from labfleet.services.environments.kinds import KINDS
from labfleet.services.reservations import service as reservations

OBJECT_TYPE = "environment"
HOLDER = "environment"


TOPIC_ALL = "environments"
"""Every environment's status changes: the environment worker wakes on them."""


def topic(env_id: int) -> str:
    return f"environment:{env_id}"


def display(env: Environment) -> str:
    return f"environment #{env.id} ({env.kind} {env.architecture})"


def snapshot(env: Environment) -> dict[str, Any]:
    return {
        "kind": env.kind,
        "status": env.status,
        "architecture": env.architecture,
        "host_id": env.host_id,
        "board_id": env.board_id,
        "reservation_id": env.reservation_id,
        "artifacts": env.artifacts,
        "error": env.error,
    }


def announce(bus: EventBus | None, env: Environment) -> None:
    """Tell followers and the environment workers (call after the commit)."""
    if bus is not None:
        event = {"type": "status", "environment": env.id, "status": env.status, "error": env.error}
        bus.publish(topic(env.id), event)
        bus.publish(TOPIC_ALL, event)


# -- artifacts


async def resolve_artifacts(
    session: AsyncSession, choice: ArtifactChoice, architecture: str
) -> tuple[int | None, list[Artifact]]:
    """The build and its artifacts that ``choice`` names, of ``architecture``."""
    if choice.build_id is not None:
        found = await artifact_service.for_build(session=session, build_id=choice.build_id)
        if not found:
            raise Invalid(f"build {choice.build_id} has no stored artifacts", field="artifacts.build_id")
        return choice.build_id, found
    if choice.commit is not None:
        rows = await artifact_service.for_commit(session=session, commit=choice.commit)
        rows = [
            a
            for a in rows
            if a.architecture == architecture
            and (choice.repository_url is None or a.repository_url == choice.repository_url)
        ]
        if not rows:
            raise Invalid(
                f"no artifacts built for {architecture} from commit {choice.commit}", field="artifacts.commit"
            )
        # The newest build of that commit, whole.
        build_id = max(a.build_job_id or 0 for a in rows) or None
        return build_id, [a for a in rows if a.build_job_id == build_id]
    assert choice.repository_url is not None
    try:
        latest = await artifact_service.latest(
            session=session,
            repository_url=choice.repository_url,
            branch=choice.branch,
            architecture=architecture,
        )
    except NotFound as exc:
        raise Invalid(exc.message, field="artifacts.latest") from exc
    return latest.build.id, latest.artifacts


def facts(rows: list[Artifact]) -> list[ArtifactFacts]:
    return [ArtifactFacts(a.id, a.name, a.type, a.architecture) for a in rows]


def refuse(problems: list[Problem]) -> None:
    """422 naming every problem (the first one's field), when there are any."""
    if problems:
        raise Invalid("; ".join(p.reason for p in problems), field=problems[0].field)


# -- creating


async def create(
    *,
    session: AsyncSession,
    actor: Actor,
    data: EnvironmentCreate,
    now: datetime | None = None,
    pipeline_id: int | None = None,
    skip: tuple[int, ...] = (),
) -> Environment:
    """Check, choose, reserve and record; flushes, the caller commits. ``skip``: resources that
    must not be chosen (they just failed to provision this)."""
    now = now or utcnow()
    arch = data.architecture.value if hasattr(data.architecture, "value") else str(data.architecture)
    build_id, rows = await resolve_artifacts(session, data.artifacts, arch)
    req, kind = data.requirements, KINDS[data.kind]
    refuse(kind.check(facts(rows), arch, req, None))
    purpose = f"{data.purpose} (pipeline #{pipeline_id})" if pipeline_id else data.purpose
    ask = await kind.ask(session, data, {"purpose": purpose, "expires_in_s": data.expires_in_s})
    reservation = await reservations.reserve(session=session, actor=actor, data=ask, now=now, skip=skip)
    refuse(kind.check(facts(rows), arch, req, await kind.placed_on(session, reservation)))
    vcpus, memory_mb = kind.size(req)
    decision = reservation.decision
    env = Environment(
        kind=data.kind,
        status=ENV_PENDING,
        owner=actor.name,
        team=actor.team,
        purpose=data.purpose,
        architecture=arch,
        request=data.model_dump(mode="json"),
        pipeline_id=pipeline_id,
        build_job_id=build_id,
        artifacts={a.type if a.type != "other" else a.name: a.id for a in rows},
        host_id=reservation.host_id,
        board_id=reservation.board_id,
        reservation_id=reservation.id,
        vcpus=vcpus,
        memory_mb=memory_mb,
        decision=decision,
        warnings=_warnings(decision),
        failed_resources=[],
        detail={"steps": []},
        attempt=0,
        expires_at=now + timedelta(seconds=data.expires_in_s),
        created_at=now,
    )
    session.add(env)
    await session.flush()
    for artifact in rows:
        await flash_repo.hold_artifact(session, artifact_id=artifact.id, holder_kind=HOLDER, holder_id=env.id)
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type=OBJECT_TYPE,
        object_id=env.id,
        display=display(env),
        after=snapshot(env),
    )
    return env


def _warnings(decision: dict[str, Any] | None) -> list[str]:
    out = []
    for w in (decision or {}).get("warnings", []):
        out.append(str(w.get("message", w)) if isinstance(w, dict) else str(w))
    return out


# -- reading


async def get(*, session: AsyncSession, ident: int, refresh: bool = False) -> Environment:
    env = await repo.environment(session, ident, refresh=refresh)
    if env is None:
        raise NotFound(f"no environment with id {ident}", field="id")
    return env


async def search(
    *, session: AsyncSession, status: str | None, owner: str | None, limit: int, offset: int
) -> tuple[int, list[Environment]]:
    return await repo.environments(
        session, filters={"status": status, "owner": owner}, limit=limit, offset=offset
    )


async def names(session: AsyncSession, env: Environment) -> tuple[str | None, str | None]:
    on_host = await kinds.host(session, env.host_id) if env.host_id else None
    on_board = await kinds.board(session, env.board_id) if env.board_id else None
    return (on_host.hostname if on_host else None), (on_board.name if on_board else None)


# -- releasing


async def request_release(*, session: AsyncSession, actor: Actor, ident: int, reason: str) -> Environment:
    """Ask for a standalone environment to be torn down (its worker does it); flushes."""
    env = await get(session=session, ident=ident)
    if env.pipeline_id is not None:
        raise Conflict(
            f"environment #{env.id} belongs to pipeline #{env.pipeline_id}: cancel the pipeline", field="id"
        )
    if env.owner != actor.name and not actor.can(Role.admin):
        raise Conflict(f"environment #{env.id} is {env.owner}'s: only its owner or an admin may release it")
    if env.status == ENV_RELEASING:
        raise Conflict(f"environment #{env.id} is being released already", field="id")
    if env.status not in ENV_HOLDING and env.status != ENV_FAILED:
        raise Conflict(f"environment #{env.id} is {env.status}", field="id")
    if env.status == ENV_FAILED and env.reservation_id is None:
        raise Conflict(f"environment #{env.id} failed and holds nothing", field="id")
    before = env.status
    env.status = ENV_RELEASING
    env.release_reason = reason
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="release",
        object_type=OBJECT_TYPE,
        object_id=env.id,
        display=display(env),
        before={"status": before},
        after={"status": env.status},
    )
    return env


async def mark_released(
    *, session: AsyncSession, env: Environment, reason: str, now: datetime | None = None
) -> None:
    """Give back exactly what it held: its reservation and its hold on the artifacts; flushes."""
    now = now or utcnow()
    if env.reservation_id is not None:
        await reservations.release_for(session=session, ident=env.reservation_id, reason=reason, now=now)
    await flash_repo.let_go(session, holder_kind=HOLDER, holder_id=env.id)
    if env.status != ENV_FAILED:
        env.status = ENV_RELEASED
    env.released_at = now
    env.release_reason = env.release_reason or reason
    env.lease_owner = None
    env.lease_expires_at = None
    await session.flush()


def add_step(env: Environment, step: str, status: str, **extra: Any) -> None:
    steps = list(env.detail.get("steps", []))
    steps.append({"step": step, "status": status, "at": utcnow().isoformat(), **extra})
    env.detail = {**env.detail, "steps": steps}


# -- the worker's lease (engine/environments.py)

claim = repo.claim_environment
beat = repo.beat_environment
expired_ready = repo.expired_ready


# -- the worker's ends (engine/environments.py)


async def expire(session: AsyncSession, now: datetime) -> list[int]:
    """Ready standalone environments past their expiry, asked to be released; flushes."""
    due = await repo.expired_ready(session, now=now)
    for ident in due:
        env = await get(session=session, ident=ident)
        env.status, env.release_reason = ENV_RELEASING, "expired"
    await session.flush()
    return due


async def provisioned(session: AsyncSession, env_id: int) -> None:
    """Ready: the worker's lease is given up (nothing runs on it until it is released); flushes."""
    env = await get(session=session, ident=env_id, refresh=True)
    env.lease_owner = env.lease_expires_at = None
    await session.flush()


def mark_failed(env: Environment, reason: str) -> None:
    env.status, env.error = ENV_FAILED, reason
