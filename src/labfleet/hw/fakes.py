"""In-package fakes of the device seams, for unit tests of logic only."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labfleet.errors import DeviceError, Timeout
from labfleet.hw.commands import CommandResult
from labfleet.hw.console import ConsoleMatch, ConsoleResult
from labfleet.hw.flash.protocol import ImageDigest, Phase, Progress, digest_of, report
from labfleet.hw.power.protocol import PowerState

Answer = CommandResult | Callable[[str], CommandResult]


@dataclass
class FakeRunner:
    """Answers commands by the first matching pattern and records every command run."""

    where: str = "fake-host"
    answers: list[tuple[str, Answer]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    def on(self, pattern: str, answer: Answer | str, exit_status: int = 0) -> FakeRunner:
        if isinstance(answer, str):
            answer = CommandResult(exit_status, answer, "" if exit_status == 0 else answer)
        self.answers.append((pattern, answer))
        return self

    async def run(self, command: str, *, timeout: float, check: bool = True) -> CommandResult:
        self.ran.append(command)
        for pattern, answer in self.answers:
            if re.search(pattern, command):
                result = answer(command) if callable(answer) else answer
                break
        else:
            result = CommandResult(127, "", f"fake: no answer for {command!r}")
        return result.checked(command, self.where) if check else result


@dataclass
class FakePower:
    """A power outlet in memory: remembers its state and every call (``on``, ``off``, ``cycle``)."""

    current: PowerState = PowerState.OFF
    calls: list[str] = field(default_factory=list)
    fail_with: DeviceError | None = None

    async def on(self, *, timeout: float) -> None:
        self._call("on")
        self.current = PowerState.ON

    async def off(self, *, timeout: float) -> None:
        self._call("off")
        self.current = PowerState.OFF

    async def cycle(self, delay: float = 2.0, *, timeout: float) -> None:
        self._call("cycle")
        self.current = PowerState.ON

    async def state(self, *, timeout: float) -> PowerState:
        if self.fail_with is not None:
            raise self.fail_with
        return self.current

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_with is not None:
            raise self.fail_with


@dataclass
class FakeFlash:
    """A flash target in memory: holds the digest of the last image written."""

    holds: ImageDigest | None = None
    version: str | None = None
    written: list[Path] = field(default_factory=list)

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        digest = await digest_of(image)
        for phase in (Phase.WRITE, Phase.VERIFY, Phase.DONE):
            report(progress, phase, digest.size, digest.size)
        self.written.append(image)
        self.holds = digest
        return digest

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        return self.holds == expected

    async def read_version(self, *, timeout: float) -> str | None:
        return self.version


@dataclass
class FakeConsole:
    """A console that answers ``run`` by the first matching pattern, and records what was sent."""

    answers: list[tuple[str, ConsoleResult]] = field(default_factory=list)
    output: str = ""
    sent: list[str] = field(default_factory=list)

    def on(self, pattern: str, output: str, exit_status: int = 0) -> FakeConsole:
        self.answers.append((pattern, ConsoleResult(output, exit_status)))
        return self

    async def open(self, *, timeout: float) -> None:
        return None

    async def close(self) -> None:
        return None

    async def write(self, data: str | bytes, *, timeout: float) -> None:
        self.sent.append(data.decode(errors="replace") if isinstance(data, bytes) else data)

    async def read(self, *, timeout: float) -> str:
        text, self.output = self.output, ""
        return text

    async def expect(self, pattern: str | re.Pattern[str], *, timeout: float) -> ConsoleMatch:
        found = re.search(pattern, self.output)
        if found is None:
            raise Timeout(f"fake console: {pattern!r} did not appear within {timeout:g} s")
        before, self.output = self.output[: found.start()], self.output[found.end() :]
        return ConsoleMatch(found, before)

    async def run(self, command: str, *, timeout: float) -> ConsoleResult:
        self.sent.append(command)
        for pattern, result in self.answers:
            if re.search(pattern, command):
                return result
        return ConsoleResult(f"sh: {command.split()[0] if command.split() else ''}: not found\n", 127)
