"""Site power commands run for real on this machine (LocalRunner), switching a state file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labfleet.errors import CommandFailed, Timeout
from labfleet.hw.commands import LocalRunner, quote
from labfleet.hw.power import PowerDeps, PowerState, build_power


def site_commands(tmp_path: Path) -> dict[str, str]:
    state = quote(str(tmp_path / "relay"))
    log = quote(str(tmp_path / "calls"))
    return {
        "on": f"echo on > {state} && echo on >> {log}",
        "off": f"echo off > {state} && echo off >> {log}",
        "state": f"cat {state} 2>/dev/null || echo unknown",
    }


async def test_site_commands_switch_and_report_the_state(tmp_path: Path) -> None:
    # Validates: 18.1, 18.3
    power = build_power("command", site_commands(tmp_path), PowerDeps(runner=LocalRunner()))
    assert await power.state(timeout=5) is PowerState.UNKNOWN
    await power.on(timeout=5)
    assert await power.state(timeout=5) is PowerState.ON
    await power.cycle(0.1, timeout=5)
    assert await power.state(timeout=5) is PowerState.ON
    await power.off(timeout=5)
    assert await power.state(timeout=5) is PowerState.OFF
    assert (tmp_path / "calls").read_text().split() == ["on", "off", "on", "off"]


async def test_concurrent_calls_run_one_after_the_other(tmp_path: Path) -> None:
    # Validates: 18.1
    marker = quote(str(tmp_path / "busy"))
    overlap = quote(str(tmp_path / "overlap"))
    # Each command notices if another is running at the same time.
    slow = f"if [ -e {marker} ]; then touch {overlap}; fi; touch {marker}; sleep 0.1; rm -f {marker}"
    power = build_power("command", {"on": slow, "off": slow}, PowerDeps(runner=LocalRunner()))
    await asyncio.gather(*(power.on(timeout=10) for _ in range(3)), power.off(timeout=10))
    assert not (tmp_path / "overlap").exists()


async def test_a_failing_or_hanging_command_is_reported(tmp_path: Path) -> None:
    # Validates: 18.5
    # exec: LocalRunner kills the shell it started on a timeout, not the shell's children.
    power = build_power(
        "command",
        {"on": "echo relay board not found >&2; exit 3", "off": "exec sleep 2"},
        PowerDeps(runner=LocalRunner()),
    )
    with pytest.raises(CommandFailed, match="relay board not found") as failed:
        await power.on(timeout=5)
    assert failed.value.exit_status == 3
    with pytest.raises(Timeout):
        await power.off(timeout=0.3)
