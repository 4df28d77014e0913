"""Build servers: registration (R1), listing, update, removal."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from labfleet.db.models import BuildServer, BuildServerLabel, Toolchain
from labfleet.schemas.auth import Actor
from labfleet.schemas.build_servers import BuildServerCreate, BuildServerUpdate
from labfleet.schemas.query import ListQuery
from labfleet.secretbox import SecretBox
from labfleet.services import credentials, inventory
from labfleet.services.validation import RegistrationValidator


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
    refreshed=("status_choice", "updated_at"),
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
        BUILD_SERVERS, session=session, actor=actor, obj=server, before=before
    )


async def remove(*, session: AsyncSession, actor: Actor, ident: int) -> None:
    await inventory.delete(BUILD_SERVERS, session=session, actor=actor, ident=ident)
