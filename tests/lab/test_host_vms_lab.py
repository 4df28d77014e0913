"""What a host really runs, against the lab's libvirt: a VM labfleet placed is labelled with
its environment, one nobody placed is a stray, and a VM killed behind labfleet's back shows
its environment flagged (stopped, then gone).

Validates: 9.1, 9.3 (the VMs of a host; seed task 15.4)
"""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Environment, Host
from labfleet.db.models.environments import QEMU
from labfleet.hw.libvirt import DomainSpec, LibvirtHost, domain_xml
from labfleet.services.health import vms
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab
IMAGES = Path("/var/lib/libvirt/images/labfleet")


def _spec(lab: VirtualLab, name: str, files: Path, port: int) -> DomainSpec:
    board = lab.board("lab-x86")
    shutil.copy(lab.paths.kernel(board), files / f"{name}.vmlinuz")
    return DomainSpec(
        name=name,
        architecture="x86_64",
        machine="pc",
        vcpus=1,
        memory_mb=128,
        kernel=str(files / f"{name}.vmlinuz"),
        cmdline="console=ttyS0 quiet panic=-1",
        console_port=port,
    )


async def test_a_host_s_vms_are_labelled_strays_flagged_and_a_killed_one_shows(
    lab: VirtualLab, session: AsyncSession
) -> None:
    tag = uuid.uuid4().hex[:8]
    owned, stray = f"labfleet-env-vms-{tag}", f"hand-made-{tag}"
    files = IMAGES / f"vms-{tag}"
    files.mkdir(parents=True)
    host = Host(hostname=f"lab-libvirt-{tag}", address=lab.host, ssh_user="root", libvirt_uri=lab.libvirt_uri)
    session.add(host)
    await session.flush()
    env = Environment(
        kind=QEMU,
        status="ready",
        owner="ci",
        architecture="x86_64",
        host_id=host.id,
        domain_name=owned,
        vcpus=1,
        memory_mb=128,
        expires_at=utcnow() + timedelta(hours=1),
    )
    session.add(env)
    await session.commit()
    host_id, env_id = host.id, env.id
    async with await LibvirtHost.open(lab.libvirt_uri) as libvirt:
        try:
            for name, port in ((owned, 23191), (stray, 23192)):
                await libvirt.define(domain_xml(_spec(lab, name, files, port)))
                await libvirt.start(name)

            seen = await vms.host_vms(session, host_id)
            mine = {v.name: v for v in seen.items if v.name in (owned, stray)}
            assert (mine[owned].environment_id, mine[owned].owner, mine[owned].stray) == (env_id, "ci", False)
            assert mine[owned].running and mine[owned].problem is None
            assert mine[stray].stray and mine[stray].environment_id is None
            assert mine[stray].problem == "no environment of labfleet owns it"

            await libvirt.destroy(owned)  # behind labfleet's back
            stopped = {v.name: v for v in (await vms.host_vms(session, host_id)).items}[owned]
            assert (stopped.running, stopped.problem) == (
                False,
                f"environment {env_id} is ready but its VM is not running",
            )
            await libvirt.undefine(owned)
            gone = await vms.host_vms(session, host_id)
            [missing] = [v for v in gone.items if v.name == owned]
            assert missing.problem == f"environment {env_id} is ready but libvirt has no such VM"
            assert gone.missing >= 1 and gone.strays >= 1
        finally:
            for name in (owned, stray):
                if await libvirt.exists(name):
                    await libvirt.destroy(name)
                    await libvirt.undefine(name)
            shutil.rmtree(files, ignore_errors=True)
