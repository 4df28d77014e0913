"""Power drivers' logic: pdudaemon through httpx.MockTransport, the others through FakeRunner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from labfleet.errors import Busy, DeviceError, Invalid, Timeout, Unreachable
from labfleet.hw.commands import CommandResult
from labfleet.hw.fakes import FakeRunner
from labfleet.hw.power import (
    CommandPower,
    CommandStateProbe,
    GpioLine,
    GpioRelayPower,
    PduDaemonOutlet,
    PduDaemonPower,
    PowerCommands,
    PowerState,
    UsbHubPort,
    UsbHubPower,
)

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


def pdu_client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def outlet(number: int = 3, pdu: str = "rack1-pdu") -> PduDaemonOutlet:
    return PduDaemonOutlet(url="http://pdu-host:16421/", pdu=pdu, outlet=number)


# -- pdudaemon ------------------------------------------------------------------------


async def test_pdudaemon_is_asked_for_the_pdu_and_outlet() -> None:
    # Validates: 18.1
    seen: list[httpx.URL] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, text="OK - accepted request\n")

    async with pdu_client(handler) as client:
        power = PduDaemonPower(outlet(), client)
        await power.on(timeout=5)
        await power.off(timeout=5)
        await power.cycle(2.5, timeout=5)

    assert [url.path for url in seen] == ["/power/control/on", "/power/control/off", "/power/control/reboot"]
    assert [dict(url.params) for url in seen] == [
        {"hostname": "rack1-pdu", "port": "3"},
        {"hostname": "rack1-pdu", "port": "3"},
        # Whole seconds, never shorter than asked.
        {"hostname": "rack1-pdu", "port": "3", "delay": "3"},
    ]
    assert seen[0].host == "pdu-host"
    assert seen[0].port == 16421


async def test_pdudaemon_cannot_tell_the_state_unless_given_a_probe() -> None:
    # Validates: 18.3
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("state must not ask pdudaemon")

    runner = FakeRunner().on(r"^cat /run/outlet-3$", "on\n")
    async with pdu_client(handler) as client:
        assert await PduDaemonPower(outlet(), client).state(timeout=5) is PowerState.UNKNOWN
        probe = CommandStateProbe(runner, "cat /run/outlet-3")
        assert await PduDaemonPower(outlet(), client, probe=probe).state(timeout=5) is PowerState.ON


async def test_pdudaemon_refusing_the_job_is_a_device_error() -> None:
    # Validates: 18.1
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="Invalid request\n")

    async with pdu_client(handler) as client:
        with pytest.raises(DeviceError, match="500 Invalid request"):
            await PduDaemonPower(outlet(), client).on(timeout=5)


async def test_pdudaemon_not_answering_is_unreachable_or_a_timeout() -> None:
    # Validates: 18.5
    async def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    async def hanging(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    async with pdu_client(refused) as client:
        with pytest.raises(Unreachable, match="pdu-host"):
            await PduDaemonPower(outlet(), client).off(timeout=5)
    async with pdu_client(hanging) as client:
        with pytest.raises(Timeout):
            await PduDaemonPower(outlet(), client).off(timeout=0.1)


# -- one operation at a time per outlet ---------------------------------------------------


async def test_two_calls_on_one_outlet_run_one_after_the_other() -> None:
    # Validates: 18.1
    running: set[str] = set()
    overlaps: list[set[str]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        key = f"{request.url.params['hostname']}/{request.url.params['port']}#{id(request)}"
        running.add(key)
        overlaps.append(set(running))
        await asyncio.sleep(0.05)
        running.discard(key)
        return httpx.Response(200, text="OK")

    async with pdu_client(handler) as client:
        same = [PduDaemonPower(outlet(3), client), PduDaemonPower(outlet(3), client)]
        await asyncio.gather(same[0].on(timeout=5), same[1].off(timeout=5), same[0].cycle(0, timeout=5))
        assert max(len(now) for now in overlaps) == 1

        overlaps.clear()
        others = [PduDaemonPower(outlet(n), client) for n in (1, 2)] + [
            PduDaemonPower(outlet(1, "pdu-b"), client)
        ]
        await asyncio.gather(*(power.on(timeout=5) for power in others))
        assert max(len(now) for now in overlaps) == 3


async def test_an_outlet_held_longer_than_the_timeout_is_busy() -> None:
    # Validates: 18.1
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, text="OK")

    async with pdu_client(handler) as client:
        first = asyncio.create_task(PduDaemonPower(outlet(), client).on(timeout=5))
        await asyncio.sleep(0.02)
        with pytest.raises(Busy) as busy:
            await PduDaemonPower(outlet(), client).off(timeout=0.1)
        assert busy.value.retry_after > 0
        release.set()
        await first


# -- USB hub (uhubctl) --------------------------------------------------------------------

STATUS = """\
Current status for hub 2-1.4 [2109:0817 VIA Labs, Inc. USB3.0 Hub, USB 3.00, 4 ports, ppps]
  Port 2: 02a0 off
Current status for hub 1-1.4 [2109:2817 VIA Labs, Inc. USB2.0 Hub, USB 2.10, 4 ports, ppps]
  Port 1: 0100 power
  Port 2: 0503 power highspeed enable connect [0483:3748 STMicroelectronics STM32 STLink]
  Port 3: 0000 off
"""

SWITCHED_OFF = (
    STATUS
    + """Sent power off request
New status for hub 2-1.4 [2109:0817 VIA Labs, Inc. USB3.0 Hub, USB 3.00, 4 ports, ppps]
  Port 2: 02a0 off
New status for hub 1-1.4 [2109:2817 VIA Labs, Inc. USB2.0 Hub, USB 2.10, 4 ports, ppps]
  Port 2: 0000 off
"""
)


async def test_uhubctl_switches_the_hub_port() -> None:
    # Validates: 18.1
    runner = FakeRunner(where="hubhost").on(r"-a off$", SWITCHED_OFF).on(r"-a (on|cycle)", "")
    power = UsbHubPower(UsbHubPort(location="1-1.4", port=2), runner)
    await power.off(timeout=5)
    await power.on(timeout=5)
    await power.cycle(1.5, timeout=5)
    assert runner.ran == [
        "uhubctl -l 1-1.4 -p 2 -a off",
        "uhubctl -l 1-1.4 -p 2 -a on",
        "uhubctl -l 1-1.4 -p 2 -a cycle -d 1.5",
    ]


async def test_uhubctl_state_is_read_from_the_port_status() -> None:
    # Validates: 18.3
    runner = FakeRunner().on(r"^uhubctl -l 1-1.4 -p \d$", STATUS)
    assert await UsbHubPower(UsbHubPort(location="1-1.4", port=2), runner).state(timeout=5) is PowerState.ON
    assert await UsbHubPower(UsbHubPort(location="1-1.4", port=3), runner).state(timeout=5) is PowerState.OFF
    with pytest.raises(DeviceError, match="did not report"):
        await UsbHubPower(UsbHubPort(location="1-1.4", port=4), runner).state(timeout=5)


async def test_a_hub_that_does_not_switch_its_port_is_a_device_error() -> None:
    # Validates: 18.1
    ganged = (
        STATUS
        + "Sent power off request\nNew status for hub 1-1.4 [...]\n  Port 2: 0503 power enable connect\n"
    )
    runner = FakeRunner().on(r"-a off$", ganged)
    with pytest.raises(DeviceError, match="reports the port on"):
        await UsbHubPower(UsbHubPort(location="1-1.4", port=2), runner).off(timeout=5)


async def test_uhubctl_failing_is_command_failed() -> None:
    # Validates: 18.1
    runner = FakeRunner().on(r"uhubctl", "No compatible devices detected!", exit_status=1)
    with pytest.raises(DeviceError, match="exited with 1"):
        await UsbHubPower(UsbHubPort(location="1-1.4", port=2), runner).on(timeout=5)


# -- GPIO relay (libgpiod 1.6) --------------------------------------------------------------


async def test_gpioset_drives_the_relay_line() -> None:
    # Validates: 18.1
    runner = FakeRunner().on(r"^gpioset ", "")
    power = GpioRelayPower(GpioLine(chip="gpiochip1", line=17, active_low=True), runner)
    await power.on(timeout=5)
    await power.off(timeout=5)
    await power.cycle(0, timeout=5)
    assert runner.ran == [
        "gpioset --mode=exit --active-low gpiochip1 17=1",
        "gpioset --mode=exit --active-low gpiochip1 17=0",
        "gpioset --mode=exit --active-low gpiochip1 17=0",
        "gpioset --mode=exit --active-low gpiochip1 17=1",
    ]


async def test_the_relay_state_comes_from_its_sense_line_only() -> None:
    # Validates: 18.3
    runner = FakeRunner().on(r"^gpioget gpiochip0 18$", "1\n")
    without = GpioRelayPower(GpioLine(line=17), runner)
    assert await without.state(timeout=5) is PowerState.UNKNOWN
    assert runner.ran == []  # reading the output line would make it an input and drop the relay
    assert await GpioRelayPower(GpioLine(line=17, sense_line=18), runner).state(timeout=5) is PowerState.ON
    odd = FakeRunner().on(r"^gpioget", "gpioget: error reading GPIO values\n")
    with pytest.raises(DeviceError, match="expected 0 or 1"):
        await GpioRelayPower(GpioLine(line=17, sense_line=18), odd).state(timeout=5)


# -- site commands ----------------------------------------------------------------------


async def test_site_commands_switch_and_tell() -> None:
    # Validates: 18.1, 18.3
    answers = {"relay-ctl 4 on": "", "relay-ctl 4 off": "", "relay-ctl 4 get": " OFF\n"}
    runner = FakeRunner().on(".", lambda command: CommandResult(0, answers[command], ""))
    power = CommandPower(
        PowerCommands(on="relay-ctl 4 on", off="relay-ctl 4 off", state="relay-ctl 4 get"), runner
    )
    await power.cycle(0, timeout=5)
    assert await power.state(timeout=5) is PowerState.OFF
    assert runner.ran == ["relay-ctl 4 off", "relay-ctl 4 on", "relay-ctl 4 get"]
    blind = CommandPower(PowerCommands(on="a", off="b"), runner)
    assert await blind.state(timeout=5) is PowerState.UNKNOWN


async def test_a_state_command_printing_something_else_is_a_device_error() -> None:
    # Validates: 18.3
    runner = FakeRunner().on("get", "maybe\n")
    power = CommandPower(PowerCommands(on="a", off="b", state="get"), runner)
    with pytest.raises(DeviceError, match="expected on, off or unknown"):
        await power.state(timeout=5)


def test_resources_refuse_what_no_controller_accepts() -> None:
    # Validates: 8.1
    with pytest.raises(Invalid) as bad:
        UsbHubPort(location="1-1; reboot", port=2)
    assert bad.value.field == "location"
    with pytest.raises(Invalid):
        PduDaemonOutlet(url="ftp://pdu", pdu="p", outlet=1)
    with pytest.raises(Invalid):
        GpioLine(chip="chip 0", line=1)
    with pytest.raises(Invalid):
        PowerCommands(on=" ", off="x")
