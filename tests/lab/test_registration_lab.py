"""Properties 1, 8 and 12 through real validation against the virtual lab: a reachable
endpoint is added with what was detected on it; an unreachable or misauthenticated one
adds nothing.

Validates: 1.2, 1.3, 7.2, 7.3, 7.5, 8.2, 8.3
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Board, BuildServer, Host
from labfleet.errors import Invalid
from labfleet.hw.ssh import SshPool
from labfleet.hw.ssh_server import new_private_key
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.build_servers import BuildServerCreate
from labfleet.schemas.hosts import HostCreate
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import boards, build_servers, hosts
from labfleet.services.inventory.device_checks import DeviceChecks
from tests.helpers import example, pool_size
from tests.lab.conftest import VirtualLab
from tests.properties.strategies import descriptions, labels

pytestmark = pytest.mark.lab

BOX = SecretBox(Fernet.generate_key())
LAB = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
_names = itertools.count(1)


@pytest.fixture
async def checks() -> AsyncIterator[DeviceChecks]:
    async with SshPool() as pool:
        yield DeviceChecks(pool=pool, timeout=30, console_timeout=5)


def ssh(lab: VirtualLab, user: str, **overrides: Any) -> dict[str, Any]:
    return {"username": user, "port": lab.ssh_port, "private_key": lab.private_key.read_text(), **overrides}


@LAB
@given(
    extra=st.fixed_dictionaries({"labels": labels, "description": descriptions, "max": st.integers(1, 64)})
)
async def test_property_1_a_reachable_build_server_joins_with_its_toolchains(
    lab: VirtualLab, session: AsyncSession, checks: DeviceChecks, extra: dict[str, Any]
) -> None:
    data = BuildServerCreate.model_validate(
        {
            "hostname": f"lab-build-{next(_names)}",
            "address": lab.host,
            "ssh": ssh(lab, lab.build_user),
            "labels": extra["labels"],
            "description": extra["description"],
            "max_concurrent_builds": extra["max"],
        }
    )
    async with example(session):
        before, _ = await pool_size(session, BuildServer)
        server = await build_servers.register(
            session=session, actor=SYSTEM, secrets=BOX, validator=checks, data=data
        )
        assert (await pool_size(session, BuildServer))[0] == before + 1
        assert {t.architecture for t in server.toolchains} >= {"x86_64", "arm64"}
        assert server.ssh_host_key == lab.known_hosts.read_text().split(maxsplit=1)[1].strip()
        assert server.cpu_cores and server.memory_mb and server.disk_free_gb is not None
        assert {lbl.key: lbl.value for lbl in server.labels} == extra["labels"]
        assert server.max_concurrent_builds == extra["max"]


@LAB
@given(fault=st.sampled_from(["wrong-key", "wrong-user", "closed-port"]))
async def test_property_1_an_unreachable_or_misauthenticated_build_server_adds_nothing(
    lab: VirtualLab, session: AsyncSession, checks: DeviceChecks, fault: str
) -> None:
    credentials = {
        "wrong-key": ssh(lab, lab.build_user, private_key=new_private_key()),
        "wrong-user": ssh(lab, "nobody-here"),
        "closed-port": ssh(lab, lab.build_user, port=1),
    }[fault]
    data = BuildServerCreate.model_validate(
        {"hostname": f"lab-bad-{next(_names)}", "address": lab.host, "ssh": credentials}
    )
    async with example(session):
        before = await pool_size(session, BuildServer)
        with pytest.raises(Invalid) as info:
            await build_servers.register(
                session=session, actor=SYSTEM, secrets=BOX, validator=checks, data=data
            )
        assert info.value.field in ("ssh", "address")
        assert ("refused" if fault == "closed-port" else "authentication failed") in info.value.message
        assert await pool_size(session, BuildServer) == before


@LAB
@given(extra=st.fixed_dictionaries({"labels": labels, "threshold": st.integers(1, 100)}))
async def test_property_8_a_reachable_host_joins_with_libvirts_capabilities(
    lab: VirtualLab, session: AsyncSession, checks: DeviceChecks, extra: dict[str, Any]
) -> None:
    data = HostCreate.model_validate(
        {
            "hostname": f"lab-kvm-{next(_names)}",
            "address": lab.host,
            "ssh": ssh(lab, "root"),
            "libvirt_uri": lab.libvirt_uri,
            "labels": extra["labels"],
            "utilization_threshold_pct": extra["threshold"],
        }
    )
    async with example(session):
        before, _ = await pool_size(session, Host)
        host = await hosts.register(session=session, actor=SYSTEM, secrets=BOX, validator=checks, data=data)
        assert (await pool_size(session, Host))[0] == before + 1
        assert {"x86_64", "arm64"} <= set(host.machine_types)
        assert "virt" in host.machine_types["arm64"]
        assert host.cpu_cores and host.memory_mb and host.storage_gb
        assert host.utilization_threshold_pct == extra["threshold"]


@LAB
@given(fault=st.sampled_from(["libvirt-closed", "wrong-key"]))
async def test_property_8_an_unreachable_host_adds_nothing(
    lab: VirtualLab, session: AsyncSession, checks: DeviceChecks, fault: str
) -> None:
    payload: dict[str, Any] = {
        "hostname": f"lab-kvm-bad-{next(_names)}",
        "address": lab.host,
        "ssh": ssh(lab, "root"),
        "libvirt_uri": lab.libvirt_uri,
    }
    if fault == "libvirt-closed":
        payload["libvirt_uri"] = "qemu+tcp://127.0.0.1:1/system"
    else:
        payload["ssh"]["private_key"] = new_private_key()
    async with example(session):
        before = await pool_size(session, Host)
        with pytest.raises(Invalid) as info:
            await hosts.register(
                session=session,
                actor=SYSTEM,
                secrets=BOX,
                validator=checks,
                data=HostCreate.model_validate(payload),
            )
        assert info.value.field == ("libvirt_uri" if fault == "libvirt-closed" else "ssh")
        assert await pool_size(session, Host) == before


@LAB
@given(which=st.sampled_from(["lab-x86", "lab-arm64"]), extra=st.fixed_dictionaries({"labels": labels}))
async def test_property_12_a_board_whose_console_answers_joins(
    lab: VirtualLab, session: AsyncSession, checks: DeviceChecks, which: str, extra: dict[str, Any]
) -> None:
    board = lab.board(which)
    n = next(_names)
    data = BoardCreate.model_validate(
        {
            "name": f"{board.name}-{n}",
            "board_type": board.board_type,
            "architecture": board.architecture,
            "serial_number": f"{board.serial_number}-{n}",
            "console_url": board.console_url,
            "power": {"driver": "pdudaemon", "url": lab.pdu_url, "pdu": lab.pdu_name, "outlet": board.outlet},
            "labels": extra["labels"],
        }
    )
    async with example(session):
        before, _ = await pool_size(session, Board)
        made = await boards.register(session=session, actor=SYSTEM, secrets=BOX, validator=checks, data=data)
        assert (await pool_size(session, Board))[0] == before + 1
        assert made.console_url == board.console_url
        assert made.power_params["outlet"] == board.outlet


async def test_property_12_a_board_whose_console_refuses_adds_nothing(
    lab: VirtualLab, session: AsyncSession, checks: DeviceChecks
) -> None:
    data = BoardCreate.model_validate(
        {
            "name": "lab-ghost",
            "board_type": "qemu-x86_64",
            "architecture": "x86_64",
            "serial_number": "LAB-GHOST",
            "console_url": "socket://127.0.0.1:1",
        }
    )
    before = await pool_size(session, Board)
    with pytest.raises(Invalid) as info:
        await boards.register(session=session, actor=SYSTEM, secrets=BOX, validator=checks, data=data)
    assert info.value.field == "console_url"
    assert await pool_size(session, Board) == before
