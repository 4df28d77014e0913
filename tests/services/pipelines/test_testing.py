"""The test stage's console runner: every case run in order and recorded with its output, a
command that does not finish interrupted so the next finds a prompt.

Validates: 17.3
"""

from __future__ import annotations

import re

from labfleet.errors import Timeout
from labfleet.hw.console import ConsoleResult
from labfleet.hw.fakes import FakeConsole
from labfleet.schemas.pipelines import TestCase
from labfleet.services.pipelines.testing import Outcome, run_tests


class Hanging(FakeConsole):
    """``sleep`` never comes back to the prompt."""

    async def run(self, command: str, *, timeout: float) -> ConsoleResult:
        if re.match("^sleep", command):
            self.sent.append(command)
            raise Timeout(f"{command!r} did not finish within {timeout:g} s")
        return await super().run(command, timeout=timeout)


async def test_cases_run_in_order_each_recorded_and_the_failed_ones_named() -> None:
    console = Hanging().on("^uname", "Linux\n").on("^false$", "", exit_status=1)
    cases = [
        TestCase(name="kernel", command="uname -s"),
        TestCase(name="stuck", command="sleep 1000", timeout_s=1),
        TestCase(name="false", command="false"),
        TestCase(name="missing", command="no-such-tool"),
    ]
    said: list[str] = []
    written: list[str] = []
    recorded: list[Outcome] = []

    async def record(outcome: Outcome) -> None:
        recorded.append(outcome)

    failed = await run_tests(console, cases, say=said.append, write=written.append, record=record)

    assert failed == ["stuck", "false", "missing"]
    assert [(o.position, o.case.name, o.status, o.exit_status) for o in recorded] == [
        (0, "kernel", "passed", 0),
        (1, "stuck", "failed", None),
        (2, "false", "failed", 1),
        (3, "missing", "failed", 127),
    ]
    assert "did not finish within 1 s" in recorded[1].output
    # The hung command was interrupted before the next one was typed.
    assert console.sent[:3] == ["uname -s", "sleep 1000", "\x03\n"]
    assert written[0] == "Linux\n"
    assert "test kernel: PASS (exit status 0)" in said
    assert "test stuck: FAIL (exit status None)" in said
