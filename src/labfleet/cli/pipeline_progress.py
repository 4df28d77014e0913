"""Following a pipeline: ``Progress`` takes the ``/api/v1/events`` messages of one pipeline (or a
pipeline as the API shows it) and says what changed, as lines for a log or as a live display.

Nothing here talks to a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from labfleet.cli.build_view import human_size, parse_time, status_of
from labfleet.cli.pipeline_view import FINAL, STYLE, elapsed, resources_text, seconds_text, styled, verdict
from labfleet.schemas.pipelines import STAGES

_MARK = {"succeeded": "✓", "failed": "✗", "cancelled": "–", "skipped": "–", "pending": "·"}
_LIVE_TESTS = 8
"""Test cases the live display shows (the latest ones)."""


@dataclass
class StageState:
    name: str
    status: str = "pending"
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)

    def update(self, data: dict[str, Any]) -> None:
        self.status = status_of(data, self.status)
        self.attempt = int(data.get("attempt") or self.attempt)
        self.started_at = parse_time(data.get("started_at"))
        self.finished_at = parse_time(data.get("finished_at"))
        took = data.get("duration_s")
        self.duration_s = float(took) if isinstance(took, int | float) else None
        self.error = data.get("error")
        self.resources = dict(data.get("resources") or {})

    @property
    def took(self) -> float | None:
        """Its duration once finished; how long it has been running so far, while it runs."""
        if self.duration_s is not None:
            return self.duration_s
        if self.status == "running":
            return elapsed(self.started_at, None)
        return elapsed(self.started_at, self.finished_at) if self.finished_at else None


@dataclass
class TestState:
    __test__ = False  # not a pytest class

    name: str
    status: str
    exit_status: int | None = None
    duration_s: float | None = None

    @classmethod
    def of(cls, data: dict[str, Any]) -> TestState:
        took = data.get("duration_s")
        exit_status = data.get("exit_status")
        return cls(
            name=str(data.get("name")),
            status=status_of(data),
            exit_status=int(exit_status) if isinstance(exit_status, int) else None,
            duration_s=float(took) if isinstance(took, int | float) else None,
        )

    def line(self) -> str:
        exit_part = f" (exit {self.exit_status})" if self.exit_status is not None else ""
        return f"test {self.name}: {verdict(self.status)}{exit_part}"


@dataclass
class Applied:
    """What one event changed, for whoever shows it."""

    lines: list[str] = field(default_factory=list)
    """Progress as plain lines: stages that started or finished, tests that finished."""
    data: bytes = b""
    """Log bytes new to this follower, in order."""
    end: str | None = None
    """The pipeline's final status, when the stream says it ended."""
    end_size: int | None = None
    reconnect: str | None = None
    """Why the stream must be joined again from ``Progress.size``."""
    error: str | None = None


@dataclass
class Progress:
    """A pipeline as its follower knows it: status, the four stages, test results, log offset."""

    pipeline_id: int
    status: str = "queued"
    stage: str | None = None
    stages: dict[str, StageState] = field(default_factory=lambda: {n: StageState(n) for n in STAGES})
    tests: list[TestState] = field(default_factory=list)
    error: str | None = None
    size: int = 0
    """Bytes of the log received: the offset to resume from."""
    note: str = ""
    """Shown on the live display: reconnecting, and why."""
    spinners: dict[str, Spinner] = field(default_factory=dict, repr=False)
    _said: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False)

    # -- events

    def apply(self, message: dict[str, Any]) -> Applied:
        """One ``/api/v1/events`` message of this pipeline's topic."""
        kind = message.get("type")
        if kind == "status":
            return Applied(lines=self.update(message))
        if kind == "log":
            return self.take(message)
        if kind == "end":
            status = str(message.get("status"))
            lines = self._status_lines(status)  # the report says how it ended
            self.status = status
            size = message.get("size")
            return Applied(lines=lines, end=status, end_size=int(size) if isinstance(size, int) else None)
        if kind == "lagged":
            return Applied(reconnect="the stream lagged")
        if kind == "error":
            return Applied(error=str(message.get("detail")))
        return Applied()

    def take(self, message: dict[str, Any]) -> Applied:
        """A piece of the log: only the part past what was received already, by byte offset."""
        start = int(message["offset"])
        data = str(message.get("data", "")).encode()
        length = message.get("length")
        end = start + (int(length) if isinstance(length, int) else len(data))
        if end <= self.size:
            return Applied()
        if start > self.size:
            return Applied(reconnect=f"the stream skipped bytes {self.size}-{start} of the log")
        data = data[self.size - start :]
        self.size = end
        return Applied(data=data)

    def update(self, snapshot: dict[str, Any]) -> list[str]:
        """A status event, or the pipeline as the API shows it: the lines saying what changed."""
        status = status_of(snapshot, self.status)
        head = self._status_lines(status) if status != self.status or "pipeline" not in self._said else []
        self.status = status
        if "error" in snapshot:
            self.error = snapshot.get("error")
        for data in snapshot.get("stages") or ():
            name = str(data.get("name"))
            self.stages.setdefault(name, StageState(name)).update(data)
        if "tests" in snapshot:
            self.tests = [TestState.of(t) for t in snapshot.get("tests") or ()]
        running = [s.name for s in self.stages.values() if s.status == "running"]
        self.stage = snapshot.get("stage") or (running[0] if running else None)

        before: list[str] = []
        after: list[str] = []
        for stage in self.stages.values():
            line = self._stage_line(stage)
            if line is None:
                continue
            (after if stage.name == "test" and stage.status != "running" else before).append(line)
        return head + before + self._test_lines() + after

    def _status_lines(self, status: str) -> list[str]:
        self._said["pipeline"] = (status,)
        return [] if status in FINAL else [f"pipeline {self.pipeline_id}: {status}"]

    def _stage_line(self, stage: StageState) -> str | None:
        used = resources_text(stage.resources)
        key = (stage.status, stage.attempt, used if stage.status == "running" else "")
        if self._said.get(f"stage:{stage.name}", ("pending", 0, "")) == key or stage.status == "pending":
            return None
        self._said[f"stage:{stage.name}"] = key
        line = f"stage {stage.name}: {stage.status}"
        if stage.status == "running":
            return (
                line
                + (f" (attempt {stage.attempt})" if stage.attempt > 1 else "")
                + (f" · {used}" if used else "")
            )
        if stage.took is not None and stage.status != "skipped":
            line += f" ({seconds_text(stage.took)})"
        return line + (f": {stage.error}" if stage.error else "")

    def _test_lines(self) -> list[str]:
        said = {k for k in self._said if k.startswith("test:")}
        current = {f"test:{t.name}" for t in self.tests}
        for gone in said - current:  # the test stage runs again: its results start over
            del self._said[gone]
        lines = []
        for test in self.tests:
            key = (test.status, test.exit_status)
            if self._said.get(f"test:{test.name}") != key:
                self._said[f"test:{test.name}"] = key
                lines.append(test.line())
        return lines

    # -- the live display

    def __rich__(self) -> RenderableType:
        return render(self)


def render(p: Progress) -> RenderableType:
    """The live progress area: one row per stage, then the latest test cases."""
    head = Text(f"pipeline {p.pipeline_id} · ", style="bold")
    head.append_text(styled(p.status))
    head.append(f" · log {human_size(p.size)}")
    if p.note:
        head.append(f" · {p.note}", style="yellow")
    grid = Table.grid(padding=(0, 1))
    for stage in p.stages.values():
        if stage.status == "running":
            mark: RenderableType = p.spinners.setdefault(stage.name, Spinner("dots", style="cyan"))
        else:
            mark = Text(_MARK.get(stage.status, "·"), style=STYLE.get(stage.status, ""))
        took = seconds_text(stage.took) if stage.took is not None else ""
        state = styled(stage.status)
        if stage.attempt > 1:
            state.append(f" (attempt {stage.attempt})", style="dim")
        used = Text(resources_text(stage.resources), style="dim")
        grid.add_row(mark, Text(f"{stage.name:<6}"), state, Text(f"{took:>8}"), used)
    parts: list[RenderableType] = [head, grid]
    if p.tests:
        passed = sum(t.status == "passed" for t in p.tests)
        parts.append(Text(f"tests: {passed} passed, {len(p.tests) - passed} failed", style="bold"))
        hidden = len(p.tests) - _LIVE_TESTS
        if hidden > 0:
            parts.append(Text(f"  … {hidden} earlier", style="dim"))
        for test in p.tests[-_LIVE_TESTS:]:
            row = Text("  ")
            row.append(f"{verdict(test.status):<4}", style=STYLE.get(test.status, "red"))
            row.append(f" {test.name}")
            if test.exit_status is not None:
                row.append(f" (exit {test.exit_status})", style="dim")
            parts.append(row)
    return Group(*parts)
