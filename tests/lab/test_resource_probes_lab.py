"""The health check a host or board passes before leaving maintenance, against the lab's real
libvirtd and the consoles of its running boards.

Validates: 12.3
"""

from __future__ import annotations

import pytest

from labfleet.errors import DeviceError
from labfleet.services.health.probes import BoardAccess, HostAccess, live_probe
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab


async def test_the_lab_host_and_boards_answer_and_dead_ends_do_not(lab: VirtualLab) -> None:
    async with live_probe(timeout=10) as probe:
        await probe.host(HostAccess(name="lab-kvm", libvirt_uri=lab.libvirt_uri))
        for board in lab.boards:
            await probe.board(BoardAccess(name=board.name, console_url=board.console_url, ssh=None))

        with pytest.raises(DeviceError):
            await probe.host(HostAccess(name="gone", libvirt_uri="qemu+tcp://127.0.0.1:1/system"))
        with pytest.raises(DeviceError) as info:
            await probe.board(BoardAccess(name="unplugged", console_url="socket://127.0.0.1:1", ssh=None))
        assert "127.0.0.1:1" in info.value.message
        with pytest.raises(DeviceError) as info:
            await probe.board(BoardAccess(name="bare", console_url=None, ssh=None))
        assert info.value.message == "board bare has neither a console nor SSH to check it through"
