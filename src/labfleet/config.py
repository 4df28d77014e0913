"""Settings, from flags or ``LABFLEET_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import platformdirs
from pydantic import Field
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

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir / 'labfleet.db'}"

    @cached_property
    def effective_secret_key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

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
