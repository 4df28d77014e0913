"""What runs on a host, as libvirt tells it, set against what labfleet placed there: each
domain labelled with the environment (and pipeline) that owns it, the ones nobody owns
flagged as strays, and environments whose VM is gone or stopped flagged as such."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Environment
from labfleet.db.models.environments import ENV_HOLDING
from labfleet.hw.libvirt import DomainInfo, LibvirtHost
from labfleet.schemas.health import HostVms, VmOut
from labfleet.services.inventory import hosts


@dataclass(frozen=True, slots=True)
class Placed:
    """An environment labfleet put on the host, as read before libvirt is asked."""

    id: int
    status: str
    pipeline_id: int | None
    owner: str
    vcpus: int
    memory_mb: int


async def _placed(session: AsyncSession, host_id: int) -> dict[str, Placed]:
    rows = await session.scalars(
        select(Environment).where(
            Environment.host_id == host_id,
            Environment.status.in_(ENV_HOLDING),
            Environment.domain_name.is_not(None),
        )
    )
    return {
        e.domain_name: Placed(e.id, e.status, e.pipeline_id, e.owner, e.vcpus, e.memory_mb)
        for e in rows
        if e.domain_name
    }


def _vm(domain: DomainInfo, env: Placed | None) -> VmOut:
    problem = None
    if env is None:
        problem = "no environment of labfleet owns it"
    elif not domain.running:
        problem = f"environment {env.id} is {env.status} but its VM is not running"
    return VmOut(
        name=domain.name,
        uuid=domain.uuid,
        running=domain.running,
        vcpus=domain.vcpus,
        memory_mb=domain.memory_mb,
        environment_id=env.id if env else None,
        pipeline_id=env.pipeline_id if env else None,
        owner=env.owner if env else None,
        stray=env is None,
        problem=problem,
    )


async def host_vms(session: AsyncSession, ident: int, *, timeout: float = 20.0) -> HostVms:
    """Asks the host's libvirt now (a device error if it does not answer)."""
    host = await hosts.get(session=session, ident=ident)
    await session.refresh(host)  # as stored now, whatever this session read before
    uri, name = host.libvirt_uri, host.hostname
    placed = await _placed(session, ident)
    await session.rollback()  # nothing held while libvirt is asked
    async with await LibvirtHost.open(uri, timeout=timeout) as libvirt:
        domains = await libvirt.domains()
    items = [_vm(d, placed.get(d.name)) for d in sorted(domains, key=lambda d: d.name)]
    seen = {d.name for d in domains}
    for domain_name, env in sorted(placed.items()):
        if domain_name not in seen:
            items.append(
                VmOut(
                    name=domain_name,
                    uuid=None,
                    running=False,
                    vcpus=env.vcpus,
                    memory_mb=env.memory_mb,
                    environment_id=env.id,
                    pipeline_id=env.pipeline_id,
                    owner=env.owner,
                    stray=False,
                    problem=f"environment {env.id} is {env.status} but libvirt has no such VM",
                )
            )
    return HostVms(
        host_id=ident,
        name=name,
        count=len(items),
        strays=sum(v.stray for v in items),
        missing=sum(1 for v in items if v.environment_id is not None and not v.running),
        items=items,
    )
