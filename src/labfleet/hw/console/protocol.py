"""What a console is to the rest of labfleet: where it is reached (``ConsolePort``), what its
waits and commands answer, and the ``ConsoleProtocol`` that ``SerialConsole`` and the fakes
implement."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from labfleet.errors import CommandFailed


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsolePort:
    """Where a console is reached: ``/dev/ttyUSB0``, ``socket://host:port`` or ``rfc2217://host:port``."""

    url: str
    baudrate: int = 115200


@dataclass(frozen=True, slots=True)
class ConsoleMatch:
    """What ``expect`` found, and the output before it."""

    match: re.Match[str]
    before: str

    @property
    def text(self) -> str:
        return self.match.group(0)


@dataclass(frozen=True, slots=True)
class ConsoleResult:
    """A command run at a shell prompt: its output (``\\n`` line ends) and exit status."""

    output: str
    exit_status: int

    def checked(self, command: str, where: str) -> ConsoleResult:
        """This result, or ``CommandFailed`` naming the command and its exit status."""
        if self.exit_status != 0:
            raise CommandFailed(
                f"{where}: `{command}` exited with {self.exit_status}: {self.output.strip()[-500:]}",
                exit_status=self.exit_status,
                stderr=self.output,
            )
        return self


@runtime_checkable
class ConsoleProtocol(Protocol):
    """A console: bytes in, text out, expect-style waits, commands at a shell prompt."""

    async def open(self, *, timeout: float) -> None: ...

    async def close(self) -> None: ...

    async def write(self, data: str | bytes, *, timeout: float) -> None: ...

    async def read(self, *, timeout: float) -> str: ...

    async def expect(self, pattern: str | re.Pattern[str], *, timeout: float) -> ConsoleMatch: ...

    async def run(self, command: str, *, timeout: float) -> ConsoleResult: ...
