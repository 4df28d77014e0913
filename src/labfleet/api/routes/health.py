"""A resource's health (``.../{id}/health``) and capacity (``.../{id}/capacity``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from labfleet.api.deps import LabDep, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.schemas.health import BuildServerCapacity, HealthOut, HostCapacity, HostVms
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.health import views, vms
from labfleet.services.health.build_servers import HealthPolicy

router = APIRouter(responses=responses(401, 403, 404, 422))
Ident = Annotated[int, Path(alias="id")]
_HEALTH = (
    "Its status now, the last check (answered or not, and why), the thresholds it is judged by, open alerts."
)


@router.get(
    "/build-servers/{id}/health",
    response_model=HealthOut,
    tags=["build-servers"],
    summary="A build server's health",
    description=_HEALTH,
)
async def build_server_health(session: SessionDep, _: Viewer, lab: LabDep, ident: Ident) -> HealthOut:
    return await views.build_server_health(session, lab, ident)


@router.get(
    "/hosts/{id}/health",
    response_model=HealthOut,
    tags=["hosts"],
    summary="A host's health",
    description=_HEALTH,
)
async def host_health(session: SessionDep, _: Viewer, lab: LabDep, ident: Ident) -> HealthOut:
    return await views.host_health(session, lab, ident)


@router.get(
    "/boards/{id}/health",
    response_model=HealthOut,
    tags=["boards"],
    summary="A board's health",
    description=_HEALTH,
)
async def board_health(session: SessionDep, _: Viewer, lab: LabDep, ident: Ident) -> HealthOut:
    return await views.board_health(session, lab, ident)


@router.get(
    "/hosts/{id}/capacity",
    response_model=HostCapacity,
    tags=["hosts"],
    summary="A host's capacity: total, reserved, measured, free, and whether it takes a new VM",
)
async def host_capacity(session: SessionDep, _: Viewer, ident: Ident) -> HostCapacity:
    return await views.host_capacity(session, ident)


@router.get(
    "/build-servers/{id}/capacity",
    response_model=BuildServerCapacity,
    tags=["build-servers"],
    summary="A build server's capacity: slots, disk, load, and whether it takes a new build",
)
async def build_server_capacity(
    request: Request, session: SessionDep, _: Viewer, lab: LabDep, ident: Ident
) -> BuildServerCapacity:
    policy: BuildPolicy = request.app.state.policy
    return await views.build_server_capacity(session, lab, HealthPolicy(thresholds=policy.thresholds), ident)


@router.get(
    "/hosts/{id}/vms",
    response_model=HostVms,
    tags=["hosts"],
    summary="The VMs libvirt runs on a host, labelled with what owns each; strays and lost ones flagged",
    description="Asks the host now: 502/504 if its libvirt does not answer.",
    responses=responses(502, 504),
)
async def host_vms(session: SessionDep, _: Viewer, ident: Ident) -> HostVms:
    return await vms.host_vms(session, ident)
