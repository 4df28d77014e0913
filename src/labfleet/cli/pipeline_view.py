"""How pipelines and environments are shown: the test plan file, a pipeline's progress as its
events come, and the report at the end.

Nothing here talks to a server: a ``Progress`` takes the ``/api/v1/events`` messages of one
pipeline (or a pipeline as the API shows it) and says what changed, as lines for a log or
as a live display; ``report`` is the summary of a pipeline as the API shows it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from labfleet.cli.build_view import duration, human_size, parse_time, ref_of, status_of
from labfleet.schemas.enums import EnvironmentStatus, PipelineStatus
from labfleet.schemas.pipelines import STAGES, TestPlan

PATH = "/pipelines"
ENV_PATH = "/environments"
FINAL = (PipelineStatus.succeeded, PipelineStatus.failed, PipelineStatus.cancelled)
ENV_SETTLED = (EnvironmentStatus.ready, EnvironmentStatus.failed, EnvironmentStatus.released)
"""An environment in these changes no more by itself (``--wait`` stops there)."""

_STYLE = {
    "succeeded": "green",
    "passed": "green",
    "ready": "green",
    "running": "cyan",
    "provisioning": "cyan",
    "failed": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "pending": "dim",
    "queued": "dim",
}
_MARK = {"succeeded": "✓", "failed": "✗", "cancelled": "–", "skipped": "–", "pending": "·"}
_LIVE_TESTS = 8
"""Test cases the live display shows (the latest ones)."""


# -- the test plan file


class PlanError(ValueError):
    """A test plan that cannot be used: unreadable, not TOML/JSON, or a field that is wrong."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"{path}: " + "; ".join(self.problems))


def load_plan(path: Path) -> TestPlan:
    """A test plan from a ``.toml`` or ``.json`` file, checked as the API would check it."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise PlanError(path, ["a test plan is a .toml or .json file"])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError(path, [exc.strerror or str(exc)]) from exc
    try:
        data: Any = tomllib.loads(raw.decode("utf-8")) if suffix == ".toml" else json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise PlanError(path, [f"not valid {suffix[1:].upper()}: {exc}"]) from exc
    if not isinstance(data, dict):
        raise PlanError(path, ["expected a table (object) of build, boot, requirements and tests"])
    try:
        return TestPlan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(path, field_problems(exc, data)) from exc


def field_problems(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    """``field: reason`` for each error, the field as a path (``tests[1] "boot-ok".command``)."""
    problems = []
    for error in exc.errors():
        where = _field(tuple(error["loc"]), data)
        reason = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            reason = "unknown field"
        elif error["type"] == "missing":
            reason = "missing (required)"
        problems.append(f"{where}: {reason}" if where else reason)
    return problems


def _field(loc: tuple[Any, ...], data: Any) -> str:
    text = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            if isinstance(name, str) and name:
                text += f" {json.dumps(name)}"
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text


def plan_body(plan: TestPlan) -> dict[str, Any]:
    """The plan's part of a PipelineCreate: what the file said, as checked (``{arch}`` kept)."""
    return plan.model_dump(mode="json", exclude_unset=True)


# -- small formats


def seconds_text(seconds: float | None) -> str:
    """``12.3 s`` under a minute, ``4m05s`` above; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{max(seconds, 0):.1f} s"
    return duration(seconds)


def resources_text(resources: dict[str, Any] | None) -> str:
    """What a stage used: ``build server b1, build job 4``."""
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in (resources or {}).items())


def verdict(status: str) -> str:
    return {"passed": "PASS", "failed": "FAIL"}.get(status, status.upper())


def exit_code(status: str) -> int:
    """What a command that followed a pipeline to its end exits with: 0 only if it succeeded."""
    return 0 if status == "succeeded" else 1


def styled(status: str) -> Text:
    return Text(status, style=_STYLE.get(status, ""))


def _elapsed(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or datetime.now(UTC)) - start).total_seconds()


# -- following: the progress model


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
            return _elapsed(self.started_at, None)
        return _elapsed(self.started_at, self.finished_at) if self.finished_at else None


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
            mark = Text(_MARK.get(stage.status, "·"), style=_STYLE.get(stage.status, ""))
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
            row.append(f"{verdict(test.status):<4}", style=_STYLE.get(test.status, "red"))
            row.append(f" {test.name}")
            if test.exit_status is not None:
                row.append(f" (exit {test.exit_status})", style="dim")
            parts.append(row)
    return Group(*parts)


# -- the report


def failed_tests(pipeline: dict[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in pipeline.get("tests") or () if status_of(t) != "passed"]


def report(pipeline: dict[str, Any]) -> list[Text]:
    """A pipeline's summary: each stage's status and duration, each test's verdict, the outcome."""
    ident = pipeline.get("id")
    status = status_of(pipeline)
    lines: list[Text] = []
    head = Text(f"pipeline {ident}: ", style="bold")
    head.append_text(styled(status))
    target = pipeline.get("target")
    where = " ".join(str(w) for w in (pipeline.get("environment_type"), target) if w and w != "auto")
    head.append(
        f" — {pipeline.get('architecture')} {ref_of(pipeline)} of {pipeline.get('repository_url')}"
        + (f" on {where}" if where else "")
    )
    lines.append(head)

    lines.append(Text("stages:", style="bold"))
    for data in pipeline.get("stages") or ():
        stage = StageState(str(data.get("name")))
        stage.update(data)
        row = Text(f"  {stage.name:<7}")
        row.append_text(styled(f"{stage.status:<10}"))
        took = stage.took if stage.status not in ("pending", "skipped") else None
        row.append(f" {seconds_text(took) if took is not None else '-':>9}")
        if stage.attempt > 1:
            row.append(f"  attempt {stage.attempt}")
        used = resources_text(stage.resources)
        if used:
            row.append(f"  {used}")
        lines.append(row)
        if stage.error:
            lines.append(Text(f"      error: {stage.error}", style="red"))

    results = [TestState.of(t) for t in pipeline.get("tests") or ()]
    planned = [str(t.get("name")) for t in (pipeline.get("spec") or {}).get("tests") or () if t.get("name")]
    not_run = [n for n in planned if n not in {t.name for t in results}]
    passed = sum(t.status == "passed" for t in results)
    total = len(results) + len(not_run)
    lines.append(Text(f"tests: {passed} of {total} passed" if total else "tests: none run", style="bold"))
    width = max((len(n) for n in [t.name for t in results] + not_run), default=0)
    for test in results:
        row = Text("  ")
        row.append(f"{verdict(test.status):<7}", style=_STYLE.get(test.status, "red"))
        row.append(f" {test.name:<{width}}")
        exit_part = f"exit {test.exit_status}" if test.exit_status is not None else "no exit status"
        row.append(f"  {exit_part:<14}")
        if test.duration_s is not None:
            row.append(f" {seconds_text(test.duration_s):>9}")
        lines.append(row)
    waiting = "NOT RUN" if status in FINAL else "PENDING"
    for name in not_run:
        lines.append(Text(f"  {waiting:<7} {name}", style="dim"))

    lines.append(_outcome(pipeline, status, passed, total))
    return lines


def _outcome(pipeline: dict[str, Any], status: str, passed: int, total: int) -> Text:
    ident = pipeline.get("id")
    took = _elapsed(parse_time(pipeline.get("started_at")), parse_time(pipeline.get("finished_at")))
    in_time = f" in {duration(took)}" if took is not None and status in FINAL else ""
    if status == "succeeded":
        return Text(f"pipeline {ident} succeeded{in_time}: {passed} of {total} tests passed", style="green")
    if status not in FINAL:
        stage = next((s.get("name") for s in pipeline.get("stages") or () if status_of(s) == "running"), None)
        return Text(f"pipeline {ident} {status}" + (f" (stage {stage})" if stage else ""), style="cyan")
    failing = failed_tests(pipeline)
    reasons = [str(pipeline.get("error"))] if pipeline.get("error") else []
    if failing:
        reasons.append(f"{len(failing)} of {total} tests failed: {', '.join(failing)}")
    reason = "; ".join(reasons) or "no reason recorded"
    return Text(f"pipeline {ident} {status}{in_time}: {reason}", style=_STYLE.get(status, "red"))


def created_line(pipeline: dict[str, Any], verb: str = "created") -> str:
    """A one-line summary of a pipeline just submitted (plain text)."""
    return (
        f"pipeline {pipeline['id']} {verb}: {pipeline.get('architecture')} {ref_of(pipeline)} of "
        f"{pipeline.get('repository_url')} on {pipeline.get('environment_type')} "
        f"(target {pipeline.get('target')}) — {status_of(pipeline)}"
    )


def current_stage(pipeline: dict[str, Any]) -> str | None:
    """The stage running, or the last one that got anywhere."""
    stages = list(pipeline.get("stages") or ())
    running = [s for s in stages if status_of(s) == "running"]
    if running:
        return str(running[0].get("name"))
    reached = [s for s in stages if status_of(s) not in ("pending", "skipped")]
    return str(reached[-1].get("name")) if reached else None


def tests_summary(pipeline: dict[str, Any]) -> str | None:
    results = list(pipeline.get("tests") or ())
    if not results:
        return None
    passed = sum(status_of(t) == "passed" for t in results)
    return f"{passed}/{len(results)} passed"


def took_of(item: dict[str, Any]) -> str | None:
    took = _elapsed(parse_time(item.get("started_at")), parse_time(item.get("finished_at")))
    return duration(took) if took is not None else None


def rate_text(rate: Any) -> str | None:
    """A success rate of the API (a fraction) as a percentage."""
    return f"{float(rate) * 100:.1f}%" if isinstance(rate, int | float) else None


# -- environments


def env_target(env: dict[str, Any]) -> str:
    if env.get("host") or env.get("host_id") is not None:
        return f"host {env.get('host') or '#' + str(env.get('host_id'))}"
    if env.get("board") or env.get("board_id") is not None:
        return f"board {env.get('board') or '#' + str(env.get('board_id'))}"
    return f"{env.get('target', 'auto')} (not chosen yet)"


def env_warnings(env: dict[str, Any]) -> list[str]:
    return [str(w.get("message", w)) if isinstance(w, dict) else str(w) for w in env.get("warnings") or ()]


def step_line(step: dict[str, Any]) -> str:
    name = step.get("step") or step.get("name") or "?"
    rest = {k: v for k, v in step.items() if k not in ("step", "name", "status", "at")}
    extra = ", ".join(f"{k}={v}" for k, v in rest.items())
    return f"step {name}: {step.get('status', '-')}" + (f" ({extra})" if extra else "")
