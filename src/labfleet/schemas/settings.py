"""The lab's settings: what an admin tunes while labfleet runs (``GET/PUT /api/v1/settings``).

Every field has a default; ``LABFLEET_*`` variables give some of them for a process until
an admin stores settings, after which the stored document is what every process applies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from labfleet.schemas.common import Strict
from labfleet.schemas.enums import ResourceKind

Seconds = Annotated[float, Field(ge=0.1, le=86400)]
Days = Annotated[float, Field(gt=0, le=3650)]
FailureLimit = Annotated[int, Field(ge=1, le=100)]
Gigabytes = Annotated[float, Field(ge=0, le=1_000_000)]
Celsius = Annotated[float, Field(ge=-40, le=200)]


class Intervals(Strict):
    """Seconds between two health checks of one resource, per kind."""

    build_server: Seconds = 60.0
    host: Seconds = 60.0
    board: Seconds = 60.0


def _ordered(low: float | None, high: float | None, low_name: str, high_name: str) -> None:
    if low is not None and high is not None and low > high:
        raise ValueError(f"{low_name} ({low:g}) must not be above {high_name} ({high:g})")


class BuildServerThresholds(Strict):
    failure_limit: FailureLimit = 3
    """Failed checks in a row after which it goes offline."""
    disk_warning_gb: Gigabytes = 50.0
    disk_critical_gb: Gigabytes = Field(default=10.0, description="Below this it takes no builds.")

    @model_validator(mode="after")
    def _disk(self) -> BuildServerThresholds:
        _ordered(self.disk_critical_gb, self.disk_warning_gb, "disk_critical_gb", "disk_warning_gb")
        return self


class HostThresholds(Strict):
    failure_limit: FailureLimit = 3


class BoardThresholds(Strict):
    failure_limit: FailureLimit = Field(
        default=3, description="Failed checks in a row before the recovery power cycle (offline after it)."
    )
    temperature_warning_c: Celsius = 80.0
    temperature_critical_c: Celsius = 95.0

    @model_validator(mode="after")
    def _temperature(self) -> BoardThresholds:
        _ordered(
            self.temperature_warning_c,
            self.temperature_critical_c,
            "temperature_warning_c",
            "temperature_critical_c",
        )
        return self


class Thresholds(Strict):
    build_server: BuildServerThresholds = Field(default_factory=BuildServerThresholds)
    host: HostThresholds = Field(default_factory=HostThresholds)
    board: BoardThresholds = Field(default_factory=BoardThresholds)


class ThresholdOverride(Strict):
    """One resource's own thresholds; what it does not give, its kind's give."""

    resource_kind: ResourceKind
    resource_id: int = Field(ge=1)
    failure_limit: FailureLimit | None = None
    disk_warning_gb: Gigabytes | None = None
    disk_critical_gb: Gigabytes | None = None
    temperature_warning_c: Celsius | None = None
    temperature_critical_c: Celsius | None = None

    @model_validator(mode="after")
    def _fits_its_kind(self) -> ThresholdOverride:
        allowed = set(_KIND_FIELDS[self.resource_kind]) | {"resource_kind", "resource_id"}
        given = {k for k, v in self.model_dump().items() if v is not None}
        if given - allowed:
            wrong = ", ".join(sorted(given - allowed))
            raise ValueError(f"a {self.resource_kind.value} has no threshold {wrong}")
        if given == {"resource_kind", "resource_id"}:
            raise ValueError("an override gives at least one threshold")
        return self


_KIND_MODELS: dict[ResourceKind, type[Strict]] = {
    ResourceKind.build_server: BuildServerThresholds,
    ResourceKind.host: HostThresholds,
    ResourceKind.board: BoardThresholds,
}
_KIND_FIELDS = {kind: tuple(model.model_fields) for kind, model in _KIND_MODELS.items()}


class HistoryRetention(Strict):
    """How long health history is kept, per tier: raw samples, then 5-minute and hourly rollups."""

    raw_days: Days = 7.0
    five_minute_days: Days = 90.0
    hourly_days: Days = 400.0

    @model_validator(mode="after")
    def _tiers(self) -> HistoryRetention:
        _ordered(self.raw_days, self.five_minute_days, "raw_days", "five_minute_days")
        _ordered(self.five_minute_days, self.hourly_days, "five_minute_days", "hourly_days")
        return self


class ArtifactRetention(Strict):
    """Keep the last N builds' artifacts per repository, branch and architecture, and none older
    than ``max_age_days`` (unset: no limit). Pinned and referenced artifacts are always kept."""

    keep_last: int = Field(default=10, ge=1, le=10_000)
    max_age_days: int | None = Field(default=None, ge=1, le=36_500)


KeepDays = Annotated[int | None, Field(ge=1, le=36_500)]


class WorkRetention(Strict):
    """How long finished work's records are kept, in days (unset: for ever). Work that
    produced a pinned artifact keeps its logs; a board keeps its last good flash."""

    build_logs_days: KeepDays = 90
    pipeline_logs_days: KeepDays = 90
    power_actions_days: KeepDays = 180
    flash_jobs_days: KeepDays = 365
    resolved_alerts_days: KeepDays = Field(default=180, description="With what was told of them.")
    audit_log_days: KeepDays = Field(
        default=730, description="Entries past it are written to the audit archive, then removed."
    )


class LabSettings(Strict):
    check_interval_seconds: Intervals = Field(default_factory=Intervals)
    check_jitter: float = Field(
        default=0.1, ge=0, le=0.5, description="Each check is moved by up to this fraction of its interval."
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    overrides: list[ThresholdOverride] = Field(default_factory=list, max_length=10_000)
    alert_time_limit_seconds: float = Field(
        default=600.0,
        ge=1,
        le=86400,
        description="A resource that stops answering has its alert within this long: the checks a "
        "kind needs to call it down (interval x failure limit, jitter included) must fit.",
    )
    history_retention: HistoryRetention = Field(default_factory=HistoryRetention)
    artifact_retention: ArtifactRetention = Field(default_factory=ArtifactRetention)
    retention: WorkRetention = Field(default_factory=WorkRetention)

    def inconsistency(self) -> tuple[str, str] | None:
        """What no single field shows wrong: the field at fault and why, or None."""
        seen: set[tuple[str, int]] = set()
        for i, o in enumerate(self.overrides):
            key = (o.resource_kind.value, o.resource_id)
            if key in seen:
                return f"overrides.{i}", f"{key[0]} {key[1]} has an override already"
            seen.add(key)
            try:
                _KIND_MODELS[o.resource_kind](**self.thresholds_for(o.resource_kind, o.resource_id))
            except ValidationError as exc:
                return f"overrides.{i}", str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        for kind in ResourceKind:
            limits = [
                self.failure_limit(kind, o.resource_id) for o in self.overrides if o.resource_kind == kind
            ]
            worst = max([getattr(self.thresholds, kind.value).failure_limit, *limits])
            took = self.detection_seconds(kind, worst)
            if took > self.alert_time_limit_seconds:
                interval = getattr(self.check_interval_seconds, kind.value)
                return (
                    f"thresholds.{kind.value}.failure_limit",
                    f"{worst} failed checks {interval:g} s apart take up to {took:g} s to call a "
                    f"{kind.value} down, beyond alert_time_limit_seconds ({self.alert_time_limit_seconds:g})",
                )
        return None

    def detection_seconds(self, kind: ResourceKind, failure_limit: int) -> float:
        """The longest a kind's resource can be down before the check that calls it so."""
        interval = float(getattr(self.check_interval_seconds, kind.value))
        return interval * (1 + self.check_jitter) * failure_limit

    def thresholds_for(self, kind: ResourceKind, resource_id: int) -> dict[str, Any]:
        """The thresholds of one resource: its kind's, and its override over them."""
        found = dict(getattr(self.thresholds, kind.value).model_dump())
        for o in self.overrides:
            if o.resource_kind == kind and o.resource_id == resource_id:
                found |= {
                    k: v
                    for k, v in o.model_dump(exclude={"resource_kind", "resource_id"}).items()
                    if v is not None
                }
        return found

    def failure_limit(self, kind: ResourceKind, resource_id: int) -> int:
        return int(self.thresholds_for(kind, resource_id)["failure_limit"])


class SettingsOut(LabSettings):
    version: int = Field(description="Bumped by every change; the ETag, to send back as If-Match.")
    updated_at: datetime | None = None
    updated_by: str | None = Field(default=None, description="Unset: never changed, the defaults.")
