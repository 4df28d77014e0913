"""A pipeline's report at the end, and the one-line summaries of pipelines in lists.

Nothing here talks to a server: each takes a pipeline as the API shows it.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from labfleet.cli.build_view import duration, parse_time, ref_of, status_of
from labfleet.cli.pipeline_progress import StageState, TestState
from labfleet.cli.pipeline_view import FINAL, STYLE, elapsed, resources_text, seconds_text, styled, verdict


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
        row.append(f"{verdict(test.status):<7}", style=STYLE.get(test.status, "red"))
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
    took = elapsed(parse_time(pipeline.get("started_at")), parse_time(pipeline.get("finished_at")))
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
    return Text(f"pipeline {ident} {status}{in_time}: {reason}", style=STYLE.get(status, "red"))


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
    took = elapsed(parse_time(item.get("started_at")), parse_time(item.get("finished_at")))
    return duration(took) if took is not None else None


def rate_text(rate: Any) -> str | None:
    """A success rate of the API (a fraction) as a percentage."""
    return f"{float(rate) * 100:.1f}%" if isinstance(rate, int | float) else None
