"""The power cycle sequence over fakes of the power and console protocols (no database).

Validates: 18.2 (property 16, the device side; the database side is in
tests/services/power/test_service.py)
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labfleet.errors import DeviceError, Unreachable
from labfleet.hw.console import ConsoleMatch
from labfleet.hw.fakes import FakeConsole, FakePower
from labfleet.services.power.cycle import CyclePlan, Step, run_cycle
from tests.power_fakes import BANNER, BootingPower


def plan(attempts: int = 3) -> CyclePlan:
    return CyclePlan(
        attempts=attempts,
        off_s=0.0,
        boot_timeout_s=1.0,
        command_timeout_s=1.0,
        console_open_timeout_s=1.0,
        boot_pattern=re.compile(re.escape(BANNER)),
    )


@settings(max_examples=200, deadline=None)
@given(attempts=st.integers(min_value=1, max_value=6), boots=st.lists(st.booleans(), max_size=8))
async def test_property_16_power_cycle_recovery_sequence(attempts: int, boots: list[bool]) -> None:
    # Validates: 18.2 (property 16): off,on pairs until a boot is seen, at most N of them
    console = FakeConsole()
    power = BootingPower(console=console, boots=list(boots))
    steps: list[tuple[int, Step]] = []

    result = await run_cycle(
        power=power, console=console, plan=plan(attempts), progress=lambda n, s: steps.append((n, s))
    )

    # Once ``boots`` is used up every boot succeeds: the first success within N attempts ends it.
    outcomes = [*boots, True][:attempts]
    expected = outcomes.index(True) + 1 if True in outcomes else attempts
    assert power.calls == ["off", "on"] * expected
    assert len(result.attempts) == expected <= attempts
    assert result.booted is (True in outcomes)
    assert [a.boot_seen for a in result.attempts] == outcomes[:expected]
    assert result.controller_error is None and result.console_error is None
    ends = [s for _, s in steps if s in (Step.BOOTED, Step.NOT_BOOTED)]
    assert ends == [Step.BOOTED if seen else Step.NOT_BOOTED for seen in outcomes[:expected]]


async def test_output_from_before_the_power_on_does_not_count_as_a_boot() -> None:
    # Validates: 18.2 (only a new boot counts)
    console = FakeConsole(output=f"{BANNER}\r\n/ # ")  # what the board said before the cycle
    power = BootingPower(console=console, boots=[False])
    result = await run_cycle(power=power, console=console, plan=plan(1))
    assert result.booted is False
    assert console.output.endswith("Kernel panic - not syncing: VFS\r\n")


async def test_a_console_that_cannot_be_opened_leaves_the_power_alone() -> None:
    class Unplugged(FakeConsole):
        async def open(self, *, timeout: float) -> None:
            raise Unreachable("socket://console-server:7001: connection refused")

    power = FakePower()
    result = await run_cycle(power=power, console=Unplugged(), plan=plan())
    assert power.calls == []
    assert result.console_error is not None and "connection refused" in result.console_error.message
    assert result.attempts == []


@pytest.mark.parametrize("error", [Unreachable("pdu: connection refused"), DeviceError("pdu: answered 500")])
async def test_a_failing_power_controller_ends_the_cycle_at_once(error: DeviceError) -> None:
    # Validates: 18.5
    power = FakePower(fail_with=error)
    result = await run_cycle(power=power, console=FakeConsole(), plan=plan())
    assert power.calls == ["off"]
    assert result.controller_error is error
    assert len(result.attempts) == 1 and result.attempts[0].error == error.message


async def test_without_a_console_the_board_is_cycled_once_unwatched() -> None:
    power = FakePower()
    result = await run_cycle(power=power, console=None, plan=plan(3))
    assert power.calls == ["off", "on"]
    assert result.booted is None


async def test_a_console_that_breaks_is_opened_again_before_the_next_power_on() -> None:
    class Flaky(FakeConsole):
        opened = 0
        broke = False

        async def open(self, *, timeout: float) -> None:
            self.opened += 1

        async def expect(self, pattern: str | re.Pattern[str], *, timeout: float) -> ConsoleMatch:
            if not self.broke:
                self.broke = True
                self.output = ""
                raise Unreachable("the other end closed the console")
            return await super().expect(pattern, timeout=timeout)

        async def read(self, *, timeout: float) -> str:
            if self.broke and self.opened < 2:
                raise Unreachable("the other end closed the console")
            return await super().read(timeout=timeout)

    console = Flaky()
    power = BootingPower(console=console)
    result = await run_cycle(power=power, console=console, plan=plan(3))
    assert console.opened == 2
    assert [a.boot_seen for a in result.attempts] == [False, True]
    assert "failed while watching" in (result.attempts[0].error or "")
    assert power.calls == ["off", "on", "off", "on"]


async def test_a_boot_timeout_is_not_a_broken_console() -> None:
    class Counting(FakeConsole):
        opened = 0

        async def open(self, *, timeout: float) -> None:
            self.opened += 1

    console = Counting()
    power = BootingPower(console=console, boots=[False, True])
    result = await run_cycle(power=power, console=console, plan=plan(3))
    assert console.opened == 1
    assert [a.boot_seen for a in result.attempts] == [False, True]
    assert result.attempts[1].seen == BANNER
