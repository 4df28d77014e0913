"""QEMU hosts: registration (R7), listing, update, removal."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from labfleet.db.models import Host, HostLabel
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import ServerStatus
from labfleet.schemas.hosts import HostCreate, HostUpdate
from labfleet.schemas.query import ListQuery
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import common as inventory
from labfleet.services.inventory import credentials
from labfleet.services.inventory.registration import RegistrationValidator
from labfleet.services.reservations import service as reservations


def _snapshot(h: Host) -> dict[str, Any]:
    return {
        "hostname": h.hostname,
        "address": h.address,
        "ssh_port": h.ssh_port,
        "ssh_user": h.ssh_user,
        "ssh_credentials_set": h.ssh_secret is not None,
        "libvirt_uri": h.libvirt_uri,
        "description": h.description,
        "status": h.status,
        "utilization_threshold_pct": h.utilization_threshold_pct,
        "labels": {label.key: label.value for label in h.labels},
    }


HOSTS: inventory.Collection[Host] = inventory.Collection(
    object_type="host",
    noun="host",
    model=Host,
    label_model=HostLabel,
    label_fk=HostLabel.host_id,
    unique=("hostname", "address"),
    sortable=frozenset({"id", "hostname", "address", "status", "created_at", "updated_at"}),
    filterable=frozenset({"kvm"}),
    loads=(selectinload(Host.labels),),
    refreshed=("status_choice", "updated_at"),
    snapshot=_snapshot,
    display=lambda h: h.hostname,
)


async def register(
    *,
    session: AsyncSession,
    actor: Actor,
    secrets: SecretBox,
    validator: RegistrationValidator,
    data: HostCreate,
) -> Host:
    """Add a QEMU host to the pool with the capabilities libvirt reports (R7.1-7.5)."""
    await inventory.ensure_unique(
        HOSTS, session=session, values={"hostname": data.hostname, "address": data.address}
    )
    facts = await inventory.validated(HOSTS, validator.host(data), field="address")
    host = Host(
        hostname=data.hostname,
        address=data.address,
        **credentials.ssh_columns(secrets, data.ssh, host_key=facts.host_key),
        libvirt_uri=data.libvirt_uri,
        description=data.description,
        utilization_threshold_pct=data.utilization_threshold_pct,
        cpu_cores=facts.cpu_cores,
        memory_mb=facts.memory_mb,
        storage_gb=facts.storage_gb,
        kvm=facts.kvm,
        machine_types=dict(facts.machine_types),
        native_architecture=facts.native_architecture,
        labels=[HostLabel(key=k, value=v) for k, v in data.labels.items()],
    )
    return await inventory.save_new(HOSTS, session=session, actor=actor, obj=host)


async def get(*, session: AsyncSession, ident: int) -> Host:
    return await inventory.fetch(HOSTS, session=session, ident=ident)


async def search(*, session: AsyncSession, query: ListQuery) -> tuple[int, list[Host]]:
    return await inventory.listing(HOSTS, session=session, query=query)


async def update(
    *, session: AsyncSession, actor: Actor, secrets: SecretBox, ident: int, data: HostUpdate
) -> Host:
    host = await get(session=session, ident=ident)
    before = _snapshot(host)
    sent = inventory.changed_fields(data)
    await inventory.ensure_unique(HOSTS, session=session, values=sent, exclude_id=ident)
    inventory.assign(
        host, sent, ("hostname", "address", "libvirt_uri", "description", "utilization_threshold_pct")
    )
    if data.ssh is not None:
        credentials.update_ssh(secrets, host, data.ssh)
    if data.labels is not None:
        inventory.sync_labels(host, HOSTS, data.labels)
    return await inventory.save_changes(
        HOSTS,
        session=session,
        actor=actor,
        obj=host,
        before=before,
        replaced=credentials.replaced(ssh=data.ssh),
    )


async def remove(*, session: AsyncSession, actor: Actor, ident: int) -> None:
    """Remove it; refused while a reservation holds it (R12.4)."""
    await reservations.ensure_unreserved(session=session, doing="remove", host_id=ident)
    await inventory.delete(HOSTS, session=session, actor=actor, ident=ident)


async def set_status(*, session: AsyncSession, actor: Actor, ident: int, status: ServerStatus) -> Any:
    """Maintenance (no new reservation, running work goes on), back online, or decommissioned
    (refused while a reservation holds it; it stays in the history) (R12). Whoever puts it
    back online checks first that it answers (``resource_probes``)."""
    obj = await get(session=session, ident=ident)
    if status is ServerStatus.decommissioned:
        await reservations.ensure_unreserved(session=session, doing="decommission", host_id=ident)
    before = _snapshot(obj)
    obj.status = status.value
    return await inventory.save_changes(HOSTS, session=session, actor=actor, obj=obj, before=before)
