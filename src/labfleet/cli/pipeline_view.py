"""Small formats of pipelines shared by the live display (``pipeline_progress``) and the report
(``pipeline_report``): durations, what a stage used, verdicts and the colour of a status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from labfleet.cli.build_view import duration
from labfleet.schemas.enums import PipelineStatus

PATH = "/pipelines"
FINAL = (PipelineStatus.succeeded, PipelineStatus.failed, PipelineStatus.cancelled)

STYLE = {
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
    return Text(status, style=STYLE.get(status, ""))


def elapsed(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or datetime.now(UTC)) - start).total_seconds()
