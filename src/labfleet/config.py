"""Settings, from flags or ``LABFLEET_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import platformdirs
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("labfleet", appauthor=False))


class Settings(BaseSettings):
    """Everything a labfleet process needs to know about where it runs."""

    model_config = SettingsConfigDict(env_prefix="LABFLEET_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; PostgreSQL for teams, SQLite in the data directory when unset.",
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="Key that encrypts secrets at rest; kept outside the database.",
    )
    artifact_dir: Path | None = Field(
        default=None,
        description="Where artifact bytes are stored, content-addressed; <data_dir>/artifacts when unset.",
    )
    audit_archive_dir: Path | None = Field(
        default=None,
        description="Where audit entries past their retention are written before they are removed; "
        "<data_dir>/audit-archive when unset.",
    )
    device_checks: bool = Field(
        default=True,
        description="Registration connects to each device (SSH, libvirt, console) before storing it; "
        "off, it validates the input only (imports from another inventory).",
    )
    engine: bool = Field(
        default=True,
        description="Run the workers (builds, recovery, retention) here; off, serve the API only.",
    )
    build_lease_seconds: float = Field(
        default=60.0, gt=0, description="A build's lease; renewed by heartbeats."
    )
    build_heartbeat_seconds: float = Field(default=10.0, gt=0)
    build_max_attempts: int = Field(
        default=3, ge=1, description="Runs of a build before it is failed for good."
    )
    build_disk_warning_gb: float = Field(default=50.0, ge=0)
    build_disk_critical_gb: float = Field(
        default=10.0, ge=0, description="Below this a server takes no builds."
    )
    max_builds: int = Field(
        default=16, ge=1, description="Builds this process runs at once, over all servers."
    )
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    health_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often each build server, QEMU host and board is health-checked."
    )
    health_failure_limit: int = Field(
        default=3,
        ge=1,
        description="Failed health checks in a row after which a build server or host goes offline "
        "and a board gets its one recovery power cycle (offline if that does not bring it back).",
    )
    utilization_retention_days: float = Field(
        default=7.0, gt=0, description="How long host utilization samples are kept for the graphs."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    # Power actions (LABFLEET_POWER_*); a cycle request may override the cycle's.
    power_off_seconds: float = Field(default=5.0, ge=0, description="How long a cycle leaves a board off.")
    power_boot_timeout_seconds: float = Field(default=180.0, gt=0)
    power_attempts: int = Field(default=3, ge=1, description="Cycles tried before a board is failed.")
    power_command_timeout_seconds: float = Field(default=30.0, gt=0)
    power_boot_pattern: str | None = Field(
        default=None, description="What a booted console shows; a shell or login prompt when unset."
    )

    # Flashing (LABFLEET_FLASH_*).
    flash_write_timeout_seconds: float = Field(default=1800.0, gt=0)
    flash_lease_seconds: float = Field(default=60.0, gt=0)
    flash_heartbeat_seconds: float = Field(default=5.0, gt=0)
    flash_max_attempts: int = Field(
        default=2, ge=1, description="Runs of a flash job by processes that died before it is rolled back."
    )
    flash_boot_timeout_seconds: float = Field(default=180.0, gt=0)
    flash_boot_pattern: str | None = None

    # Environments (LABFLEET_DEPLOY_*).
    deploy_dir: str = Field(
        default="/var/lib/libvirt/images/labfleet",
        description="Where a host keeps a VM's artifacts (QEMU must read it), one directory per environment.",
    )
    deploy_console_port_first: int = Field(default=24100, ge=1, le=65535)
    deploy_console_port_last: int = Field(default=24899, ge=1, le=65535)

    # Pipelines (LABFLEET_PIPELINE_*).
    pipeline_lease_seconds: float = Field(default=30.0, gt=0)
    pipeline_heartbeat_seconds: float = Field(default=5.0, gt=0)
    pipeline_max_running: int = Field(default=32, ge=1)
    pipeline_resource_wait_seconds: float = Field(default=3600.0, ge=0)

    # Notifications (LABFLEET_NOTIFY_*).
    notify_lease_seconds: float = Field(
        default=60.0, gt=0, description="A delivery in flight; a dead process's is retried after it."
    )
    notify_max_attempts: int = Field(
        default=8, ge=1, description="Tries of one delivery before its channel is marked failing."
    )
    notify_backoff_base_seconds: float = Field(default=5.0, gt=0)
    notify_backoff_max_seconds: float = Field(default=600.0, gt=0)
    notify_timeout_seconds: float = Field(default=15.0, gt=0, description="How long one try may take.")
    notify_poll_seconds: float = Field(default=1.0, gt=0)
    notify_concurrency: int = Field(default=8, ge=1, description="Deliveries in flight at once, per process.")

    @model_validator(mode="after")
    def _console_ports(self) -> Settings:
        if self.deploy_console_port_first > self.deploy_console_port_last:
            raise ValueError("deploy_console_port_first must not be above deploy_console_port_last")
        return self

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir / 'labfleet.db'}"

    @cached_property
    def effective_secret_key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    @cached_property
    def effective_audit_archive_dir(self) -> Path:
        return self.audit_archive_dir or self.data_dir / "audit-archive"

    @cached_property
    def effective_artifact_dir(self) -> Path:
        return self.artifact_dir or self.data_dir / "artifacts"


def normalize_database_url(url: str) -> str:
    """Accept the plain ``postgresql://`` and ``sqlite://`` spellings users know."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url
