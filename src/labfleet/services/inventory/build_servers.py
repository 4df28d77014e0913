"""Build servers: registration (R1), listing, update, removal."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from labfleet.db.models import BuildServer, BuildServerLabel, Toolchain
from labfleet.db.models.builds import RUNNING
from labfleet.db.repositories import builds as builds_repo
from labfleet.errors import Conflict
from labfleet.schemas.auth import Actor
from labfleet.schemas.build_servers import BuildServerCreate, BuildServerUpdate
from labfleet.schemas.enums import ServerStatus
from labfleet.schemas.query import ListQuery
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import common as inventory
from labfleet.services.inventory import credentials
from labfleet.services.inventory.registration import RegistrationValidator


def _snapshot(s: BuildServer) -> dict[str, Any]:
    return {
        "hostname": s.hostname,
        "address": s.address,
        "ssh_port": s.ssh_port,
        "ssh_user": s.ssh_user,
        "ssh_credentials_set": s.ssh_secret is not None,
        "description": s.description,
        "status": s.status,
        "max_concurrent_builds": s.max_concurrent_builds,
        "labels": {label.key: label.value for label in s.labels},
    }


BUILD_SERVERS: inventory.Collection[BuildServer] = inventory.Collection(
    object_type="build_server",
    noun="build server",
    model=BuildServer,
    label_model=BuildServerLabel,
    label_fk=BuildServerLabel.build_server_id,
    unique=("hostname", "address"),
    sortable=frozenset({"id", "hostname", "address", "status", "created_at", "updated_at"}),
    filterable=frozenset(),
    loads=(selectinload(BuildServer.labels), selectinload(BuildServer.toolchains)),
    refreshed=("status_choice", "updated_at", "active_builds", "queued_builds"),
    snapshot=_snapshot,
    display=lambda s: s.hostname,
)


async def register(
    *,
    session: AsyncSession,
    actor: Actor,
    secrets: SecretBox,
    validator: RegistrationValidator,
    data: BuildServerCreate,
) -> BuildServer:
    """Add a build server to the pool with what its validation detected (R1.1-1.4)."""
    await inventory.ensure_unique(
        BUILD_SERVERS, session=session, values={"hostname": data.hostname, "address": data.address}
    )
    facts = await inventory.validated(BUILD_SERVERS, validator.build_server(data), field="address")
    server = BuildServer(
        hostname=data.hostname,
        address=data.address,
        **credentials.ssh_columns(secrets, data.ssh, host_key=facts.host_key),
        description=data.description,
        max_concurrent_builds=data.max_concurrent_builds,
        cpu_cores=facts.cpu_cores,
        memory_mb=facts.memory_mb,
        disk_total_gb=facts.disk_total_gb,
        disk_free_gb=facts.disk_free_gb,
        load_1m=facts.load_1m,
        labels=[BuildServerLabel(key=k, value=v) for k, v in data.labels.items()],
        toolchains=[Toolchain(**dataclasses.asdict(t)) for t in facts.toolchains],
    )
    return await inventory.save_new(BUILD_SERVERS, session=session, actor=actor, obj=server)


async def get(*, session: AsyncSession, ident: int) -> BuildServer:
    return await inventory.fetch(BUILD_SERVERS, session=session, ident=ident)


async def search(*, session: AsyncSession, query: ListQuery) -> tuple[int, list[BuildServer]]:
    return await inventory.listing(BUILD_SERVERS, session=session, query=query)


async def update(
    *, session: AsyncSession, actor: Actor, secrets: SecretBox, ident: int, data: BuildServerUpdate
) -> BuildServer:
    """Change settings or credentials (R1.5); unique fields stay unique."""
    server = await get(session=session, ident=ident)
    before = _snapshot(server)
    sent = inventory.changed_fields(data)
    await inventory.ensure_unique(BUILD_SERVERS, session=session, values=sent, exclude_id=ident)
    inventory.assign(server, sent, ("hostname", "address", "description", "max_concurrent_builds"))
    if data.ssh is not None:
        credentials.update_ssh(secrets, server, data.ssh)
    if data.labels is not None:
        inventory.sync_labels(server, BUILD_SERVERS, data.labels)
    return await inventory.save_changes(
        BUILD_SERVERS,
        session=session,
        actor=actor,
        obj=server,
        before=before,
        replaced=credentials.replaced(ssh=data.ssh),
    )


async def set_status(*, session: AsyncSession, actor: Actor, ident: int, status: ServerStatus) -> BuildServer:
    """Put a server in maintenance, back in service, or decommission it (R2.5, R12).

    Maintenance lets running builds finish and starts no new one (claims take only online or
    degraded servers); decommissioning is refused while a build runs on it (R12.4).
    """
    if status is ServerStatus.decommissioned:
        await _ensure_no_running_builds(session, ident, "decommission")
    server = await get(session=session, ident=ident)
    before = _snapshot(server)
    server.status = status.value
    return await inventory.save_changes(
        BUILD_SERVERS, session=session, actor=actor, obj=server, before=before
    )


async def remove(*, session: AsyncSession, actor: Actor, ident: int) -> None:
    """Remove a build server; refused while a build runs on it (R12.4) or waits for it alone."""
    await _ensure_no_running_builds(session, ident, "remove")
    pinned = await builds_repo.queued_pinned_to(session, ident)
    if pinned:
        names = ", ".join(f"#{i}" for i in pinned)
        raise Conflict(
            f"cannot remove build server {ident}: queued build jobs {names} were submitted for it "
            "alone; cancel them first (or decommission it: it then stays in the build history)"
        )
    await inventory.delete(BUILD_SERVERS, session=session, actor=actor, ident=ident)


async def _ensure_no_running_builds(session: AsyncSession, ident: int, doing: str) -> None:
    """``Conflict`` naming the builds running on the server. Its row is locked first (on
    PostgreSQL), so a worker cannot claim a slot on it between this check and the change."""
    server = await session.get(BuildServer, ident, with_for_update={"of": BuildServer})
    if server is None:
        return  # the caller's fetch says NotFound
    total, running = await builds_repo.page(
        session, statuses=(RUNNING,), build_server_id=ident, limit=10, offset=0
    )
    if total:
        names = ", ".join(f"#{j.id}" for j in sorted(running, key=lambda j: j.id))
        more = f" and {total - len(running)} more" if total > len(running) else ""
        jobs = f"build job {names} is" if total == 1 else f"build jobs {names}{more} are"
        raise Conflict(
            f"cannot {doing} build server {server.hostname}: {jobs} running on it; "
            "put it in maintenance and wait for them to finish, or cancel them"
        )
