"""An ``auto`` host reservation against the virtual lab's libvirt: registration records the host's
native architecture from libvirt's capabilities, and selection places an x86_64 VM on it.

Validates: 7.3, 11.3, 13.2, 13.5
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.errors import Invalid
from labfleet.hw.ssh import SshPool
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.hosts import HostCreate
from labfleet.schemas.reservations import ReservationCreate
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import hosts
from labfleet.services.inventory.device_checks import DeviceChecks
from labfleet.services.reservations import service as reservations
from tests.lab.conftest import VirtualLab, on

pytestmark = pytest.mark.lab

BOX = SecretBox(Fernet.generate_key())


@pytest.fixture
async def checks() -> AsyncIterator[DeviceChecks]:
    async with SshPool() as pool:
        yield DeviceChecks(pool=pool, timeout=30, console_timeout=5)


def auto_host(**target: object) -> ReservationCreate:
    return ReservationCreate.model_validate(
        {"purpose": "lab boot test", "target": {"auto": "host", "architecture": "x86_64", **target}}
    )


@on("postgresql")
async def test_the_lab_host_is_native_x86_64_and_an_auto_x86_64_vm_goes_there(
    lab: VirtualLab, session: AsyncSession, checks: DeviceChecks
) -> None:
    data = HostCreate.model_validate(
        {
            "hostname": "lab-kvm-allocation",
            "address": lab.host,
            "ssh": {"username": "root", "port": lab.ssh_port, "private_key": lab.private_key.read_text()},
            "libvirt_uri": lab.libvirt_uri,
        }
    )
    host = await hosts.register(session=session, actor=SYSTEM, secrets=BOX, validator=checks, data=data)
    assert host.native_architecture == "x86_64"
    assert {"x86_64", "arm64"} <= set(host.machine_types)
    assert host.cpu_cores and host.memory_mb

    made = await reservations.reserve(session=session, actor=SYSTEM, data=auto_host(vcpus=1, memory_mb=256))
    assert made.host_id == host.id
    assert made.decision is not None
    assert made.decision["chosen_id"] == host.id
    report = next(c for c in made.decision["explanation"]["candidates"] if c["id"] == host.id)
    assert report["rank"] == 1 and not report["excluded"]
    # Native: never noted as emulated.
    assert "emulated" not in {n["code"] for n in report["notes"]}

    # arm64 is only emulated there: it goes there too, with the note; KVM for it never could.
    arm = await reservations.reserve(
        session=session, actor=SYSTEM, data=auto_host(architecture="arm64", vcpus=1, memory_mb=256)
    )
    assert arm.host_id == host.id and arm.decision is not None
    notes = next(c for c in arm.decision["explanation"]["candidates"] if c["id"] == host.id)["notes"]
    assert "emulated" in {n["code"] for n in notes}
    with pytest.raises(Invalid) as refused:
        await reservations.reserve(
            session=session, actor=SYSTEM, data=auto_host(architecture="arm64", kvm=True)
        )
    assert refused.value.field == "target.kvm"
