"""Routers of the inventory: build servers, hosts, boards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request

from labfleet.api import render
from labfleet.api.deps import Admin, SecretsDep, SessionDep, lab_settings_now
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base, inventory_router
from labfleet.errors import Conflict, DeviceError, LabfleetError
from labfleet.hw.ssh import SshTarget
from labfleet.schemas.boards import BoardCreate, BoardOut, BoardUpdate
from labfleet.schemas.build_servers import (
    BuildServerCreate,
    BuildServerOut,
    BuildServerStatusChange,
    BuildServerUpdate,
)
from labfleet.schemas.common import ArchitectureName, Slug
from labfleet.schemas.enums import BoardStatus, ServerStatus
from labfleet.schemas.hosts import HostCreate, HostOut, HostUpdate
from labfleet.services.health import tuning
from labfleet.services.health.probes import ResourceProbe
from labfleet.services.inventory import boards, build_servers, credentials, hosts

Ident = Annotated[int, Path(alias="id", description="The build server's id.")]


def _no_filters() -> dict[str, Any]:
    return {}


def _host_filters(
    kvm: Annotated[bool | None, Query(description="Hosts with (or without) KVM.")] = None,
) -> dict[str, Any]:
    return {} if kvm is None else {"kvm": kvm}


def _board_filters(
    architecture: Annotated[
        list[ArchitectureName] | None, Query(description="Any of these architectures.")
    ] = None,
    board_type: Annotated[list[Slug] | None, Query(description="Any of these board types.")] = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if architecture:
        fields["architecture"] = [a.value for a in architecture]
    if board_type:
        fields["board_type"] = board_type
    return fields


build_servers_router = inventory_router(
    path="/build-servers",
    noun="build server",
    service=build_servers,
    create=BuildServerCreate,
    update=BuildServerUpdate,
    out=BuildServerOut,
    render=render.build_server,
    statuses=ServerStatus,
    filters=_no_filters,
)

hosts_router = inventory_router(
    path="/hosts",
    noun="host",
    service=hosts,
    create=HostCreate,
    update=HostUpdate,
    out=HostOut,
    render=render.host,
    statuses=ServerStatus,
    filters=_host_filters,
)

boards_router = inventory_router(
    path="/boards",
    noun="board",
    service=boards,
    create=BoardCreate,
    update=BoardUpdate,
    out=BoardOut,
    render=render.board,
    statuses=BoardStatus,
    filters=_board_filters,
)


async def _passes_its_check(request: Request, ident: int, name: str, current: str, ssh: SshTarget) -> None:
    """Back in the pool only after a passing health check (R12.3): it answers, and its
    workspace disk is above the critical threshold."""
    probe: ResourceProbe = request.app.state.probe
    try:
        facts = await probe.build_server(ssh)
    except DeviceError as exc:
        raise Conflict(
            f"build server {name} failed its health check, so it stays {current}: {exc.message}"
        ) from exc
    critical = tuning.disk_critical_gb(lab_settings_now(request), ident)
    if facts is not None and facts.disk_free_bytes is not None and facts.disk_free_bytes / 1024**3 < critical:
        free = facts.disk_free_bytes / 1024**3
        raise Conflict(
            f"build server {name} failed its health check, so it stays {current}: its workspace disk has "
            f"{free:.1f} GB free, below the critical {critical:g} GB"
        )


@build_servers_router.put(
    "/{id}/status",
    response_model=BuildServerOut,
    summary="Put a build server in maintenance, back online, or decommission it",
    description="Maintenance: running builds finish, no new one starts. Online: after a passing "
    "health check, SSH and the probe answering and the workspace disk above the critical threshold "
    "(409 if not; the status stays). Decommissioning is refused (409) while a build runs on it; a "
    "decommissioned server stays in the history.",
    operation_id="set_build_server_status",
    responses=responses(404, 409),
)
async def set_build_server_status(
    request: Request,
    session: SessionDep,
    actor: Admin,
    secrets: SecretsDep,
    ident: Ident,
    change: BuildServerStatusChange,
) -> BuildServerOut:
    server = await build_servers.get(session=session, ident=ident)
    current, name = server.status, server.hostname
    checked = change.status == "online" and current != "online"
    try:
        ssh = credentials.ssh_target(secrets, server) if checked else None
    except LabfleetError as exc:
        raise Conflict(
            f"build server {name} failed its health check, so it stays {current}: its stored SSH "
            f"access cannot be used: {exc.message}"
        ) from exc
    await session.rollback()  # nothing held while the server is asked
    if ssh is not None:
        await _passes_its_check(request, ident, name, current, ssh)
    server = await build_servers.set_status(
        session=session, actor=actor, ident=ident, status=ServerStatus(change.status)
    )
    await session.commit()
    return render.build_server(server, api_base(request))
