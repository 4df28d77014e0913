"""The pdudaemon driver against a real pdudaemon whose PDU writes each outlet's state to a file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from labfleet.errors import DeviceError, Unreachable
from labfleet.hw.commands import LocalRunner
from labfleet.hw.power import (
    CommandStateProbe,
    PduDaemonOutlet,
    PduDaemonPower,
    PowerDeps,
    PowerState,
    build_power,
)
from tests.helpers import free_port
from tests.hw.daemons_pdudaemon import LocalPdu, pdudaemon


@pytest.fixture(scope="module")
def pdu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPdu]:
    with pdudaemon(tmp_path_factory.mktemp("pdudaemon")) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_on_and_off_switch_the_outlet(pdu: LocalPdu, http: httpx.AsyncClient) -> None:
    # Validates: 18.1
    power = build_power("pdudaemon", {"url": pdu.url, "pdu": pdu.pdu, "outlet": 1}, PowerDeps(http=http))
    await power.on(timeout=10)
    assert pdu.state_of(1) == "on"
    await power.off(timeout=10)
    assert pdu.state_of(1) == "off"
    assert pdu.state_of(2) is None


async def test_a_cycle_ends_on(pdu: LocalPdu, http: httpx.AsyncClient) -> None:
    # Validates: 18.1
    power = PduDaemonPower(PduDaemonOutlet(url=pdu.url, pdu=pdu.pdu, outlet=2), http)
    await power.off(timeout=10)
    await power.cycle(0, timeout=10)
    assert pdu.state_of(2) == "on"


async def test_concurrent_calls_on_one_outlet_reach_it_in_order(
    pdu: LocalPdu, http: httpx.AsyncClient
) -> None:
    # Validates: 18.1
    power = PduDaemonPower(PduDaemonOutlet(url=pdu.url, pdu=pdu.pdu, outlet=5), http)
    await asyncio.gather(power.on(timeout=10), power.off(timeout=10))
    assert pdu.state_of(5) == "off"


async def test_the_state_is_unknown_unless_a_probe_reads_it(pdu: LocalPdu, http: httpx.AsyncClient) -> None:
    # Validates: 18.3
    outlet = PduDaemonOutlet(url=pdu.url, pdu=pdu.pdu, outlet=3)
    assert await PduDaemonPower(outlet, http).state(timeout=5) is PowerState.UNKNOWN
    probe = CommandStateProbe(LocalRunner(), f"cat {pdu.outlets / 'outlet-3'}")
    power = PduDaemonPower(outlet, http, probe=probe)
    await power.on(timeout=10)
    assert await power.state(timeout=5) is PowerState.ON
    await power.off(timeout=10)
    assert await power.state(timeout=5) is PowerState.OFF


async def test_a_pdu_pdudaemon_does_not_know_is_refused(pdu: LocalPdu, http: httpx.AsyncClient) -> None:
    # Validates: 18.5
    power = PduDaemonPower(PduDaemonOutlet(url=pdu.url, pdu="no-such-pdu", outlet=1), http)
    with pytest.raises(DeviceError, match="500"):
        await power.on(timeout=10)


async def test_a_pdudaemon_that_does_not_listen_is_unreachable(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Validates: 18.5
    nobody = f"http://127.0.0.1:{free_port()}"
    power = PduDaemonPower(PduDaemonOutlet(url=nobody, pdu="lab-pdu", outlet=1), http)
    with pytest.raises(Unreachable, match=r"127\.0\.0\.1"):
        await power.on(timeout=5)
    with pytest.raises(Unreachable):
        await power.cycle(1, timeout=5)
