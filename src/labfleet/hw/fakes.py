"""In-package fakes of the device seams, for unit tests of logic only."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from labfleet.hw.commands import CommandResult

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
