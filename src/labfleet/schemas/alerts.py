"""Alerts as the API shows them, and what a person says when acting on one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class AlertState(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


class AlertSubject(StrEnum):
    """What an alert is about: a resource of the lab, or a part of labfleet itself."""

    build_server = "build_server"
    host = "host"
    board = "board"
    artifact = "artifact"
    channel = "channel"
    """A notification channel that cannot deliver."""


class AlertChange(StrEnum):
    """What is told about an alert: it was raised, got worse, someone is on it, it is over."""

    raised = "raised"
    escalated = "escalated"
    acknowledged = "acknowledged"
    resolved = "resolved"


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class AlertAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(
        default=None, max_length=2000, description="Why: what was done, or who is on it."
    )


class AlertOut(BaseModel):
    id: int
    resource_kind: AlertSubject
    resource_id: int
    kind: str
    severity: Severity
    message: str
    state: AlertState
    occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledged_comment: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolved_comment: str | None
