"""A resource's health and capacity, as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from labfleet.schemas.alerts import AlertOut
from labfleet.schemas.common import StatusOut
from labfleet.schemas.enums import ResourceKind


class HealthOut(BaseModel):
    kind: ResourceKind
    id: int
    name: str
    status: StatusOut
    checked_at: datetime | None = Field(description="The last check, answered or not; unset: never checked.")
    answered: bool | None = Field(description="Whether the last check was answered; unset: never checked.")
    consecutive_failures: int
    why: str | None = Field(description="What the last check could not do, or why the status is what it is.")
    check_interval_seconds: float
    next_check_after: datetime | None
    thresholds: dict[str, Any] = Field(description="This resource's own: its kind's, under its override.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="What the last check learned: load and disk (build server), usage (host), "
        "temperature and power state (board).",
    )
    open_alerts: list[AlertOut]


class Amounts(BaseModel):
    vcpus: int | None
    memory_mb: int | None
    storage_gb: float | None


class Measured(BaseModel):
    cpu_pct: float
    memory_pct: float
    storage_pct: float
    running_vms: int
    sampled_at: datetime


class HostCapacity(BaseModel):
    host_id: int
    name: str
    status: str
    total: Amounts
    reserved: Amounts
    free: Amounts
    reservations: int
    used: Measured | None = Field(description="The latest utilization sample; unset: never sampled.")
    threshold_pct: float = Field(description="Above this measured utilization it takes no new VM.")
    takes_new_work: bool
    why_not: list[str]


class BuildServerCapacity(BaseModel):
    build_server_id: int
    name: str
    status: str
    slots: int
    running: int
    queued: int
    free_slots: int
    disk_free_gb: float | None
    disk_total_gb: float | None
    disk_warning_gb: float
    disk_critical_gb: float
    load_1m: float | None
    cpu_cores: int | None
    max_load_per_core: float
    takes_new_work: bool
    why_not: list[str]


class VmOut(BaseModel):
    name: str
    uuid: str | None
    running: bool
    vcpus: int | None
    memory_mb: int | None
    environment_id: int | None = Field(
        description="The environment that owns it; unset: labfleet knows it not."
    )
    pipeline_id: int | None
    owner: str | None
    stray: bool = Field(description="libvirt runs it but no environment of labfleet owns it.")
    problem: str | None = Field(description="What is wrong with it as labfleet sees it.")


class HostVms(BaseModel):
    host_id: int
    name: str
    count: int
    strays: int
    missing: int = Field(description="Environments on this host whose VM libvirt does not run.")
    items: list[VmOut]
